"""A net's size, FLOPs and activations from its numbers (ablation.nets.footprint), checked against real builds,
and the memory check built on them (ablation.training.feasibility)."""

import time

import pytest
import torch

from ablation.core.errors import ConfigError
from ablation.nets.footprint import footprint
from ablation.nets.models import build_model, count_flops, count_params
from ablation.training import feasibility
from ablation.training.config import validate_config

NETS = [
    ("resnet8", {"width": 4}),
    ("resnet20", {}),
    ("resnet26", {"shortcut": "exclusive-gate", "b": -6.0}),
    ("resnet29b", {"order": "full-preact", "match": "projection"}),
    ("resnet18", {"shortcut": "projection"}),
    ("resnet20", {"shortcut": "fixup", "norm": "none"}),
    ("resnet20", {"shortcut": "nf", "norm": "ws"}),
    ("resnet32", {"shortcut": "layerscale"}),
    ("resnet14", {"shortcut": "plain", "bottleneck_stride": "1x1"}),
]
# what the activation estimate may be of what autograd keeps for the backward pass (measured on these nets:
# 1.2x to 2.4x; it counts every output, also those autograd does not keep)
FACTOR = (1.0, 3.0)


def _kept_bytes(model, x) -> int:
    """Bytes of the tensors (not parameters) that a training forward pass keeps for the backward pass."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(seen.values())


@pytest.mark.parametrize("arch, kw", NETS, ids=[f"{a}-{'-'.join(map(str, k.values()))}" for a, k in NETS])
def test_the_estimate_matches_a_real_build(arch, kw):
    fp = footprint(arch, image=(32, 32), **kw)
    model = build_model(arch, **kw).train()
    assert fp.params == count_params(model)
    assert fp.flops == count_flops(model, (3, 32, 32))
    batch = 4
    ratio = fp.activations * batch * 4 / _kept_bytes(model, torch.randn(batch, 3, 32, 32))
    assert FACTOR[0] <= ratio <= FACTOR[1], ratio


def test_a_net_too_big_to_build_is_counted_at_once():
    t = time.perf_counter()
    big = footprint("resnet600002")
    assert time.perf_counter() - t < 10
    one_unit = footprint("resnet20").params - footprint("resnet14").params  # a unit of each stage
    assert big.params == footprint("resnet14").params + (100000 - 2) * one_unit


def test_describe_answers_for_a_net_too_big_to_build(capsys):
    from ablation import __main__ as describe

    t = time.perf_counter()
    assert describe.main(["resnet600002"]) == 0
    assert time.perf_counter() - t < 30
    assert f"parameters {footprint('resnet600002').params:,}" in capsys.readouterr().out


def _cfg(**kw):
    return validate_config({"dataset": "synthetic", "arch": "resnet8", "width": 4, "steps": 6, "milestones": [],
                            "device": "cpu", **kw})


def test_the_memory_check_refuses_what_exceeds_the_limit_and_the_limit_can_be_raised(monkeypatch):
    cfg = _cfg(batch_size=64)
    need = feasibility.memory_needed(cfg)["total"]
    monkeypatch.setenv(feasibility.LIMIT_VAR, f"{need // 2**20 - 1}M")
    with pytest.raises(ConfigError, match=r"resnet8 at batch_size=64 needs about .* ABLATION_MEMORY_LIMIT"):
        feasibility.check_fits(cfg)
    monkeypatch.setenv(feasibility.LIMIT_VAR, f"{need // 2**20 + 1}M")
    assert feasibility.check_fits(cfg)["total"] == need
    monkeypatch.setenv(feasibility.LIMIT_VAR, "none")
    feasibility.check_fits(_cfg(image_size=100000))
    monkeypatch.setenv(feasibility.LIMIT_VAR, "lots")
    with pytest.raises(ConfigError, match="not a size"):
        feasibility.check_fits(cfg)


def test_the_limit_is_this_machines_available_memory(monkeypatch):
    monkeypatch.delenv(feasibility.LIMIT_VAR, raising=False)
    limit, source = feasibility.memory_limit()
    assert 0 < limit <= feasibility.available_memory() * 2 and "available" in source
    with pytest.raises(ConfigError, match="more than the .* available on this machine"):
        feasibility.check_fits(_cfg(image_size=100000))


def test_a_batch_of_one_fails_only_where_batchnorm_sees_one_value():
    with pytest.raises(ConfigError, match="BatchNorm sees one value per channel"):
        _cfg(batch_size=1, image_size=4)
    _cfg(batch_size=2, image_size=4)  # two values per channel
    _cfg(batch_size=1, image_size=8)  # a 2x2 map
    _cfg(batch_size=1, image_size=4, norm="none", shortcut="fixup")  # nothing to normalise
