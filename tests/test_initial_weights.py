"""A run's initial net is a function of its config and seed alone, and stays the net its hash names.

:func:`ablation.training.step.initial_model` seeds torch's generator itself; validation (the throwaway shortcut, a
plugin's probe) draws from a fork of it (:func:`ablation.nets.models.check_model_args`); and the draws every stored
run made before its net are kept, in one place (:func:`ablation.nets.models.draws_before_the_net`).
The same net in four contexts (processes) is tests/test_same_net.py.
"""

import pytest
import torch

from ablation.nets.models import build_model, check_model_args, seeded_model
from ablation.nets.registry import load_plugin
from ablation.training.config import validate_config
from ablation.training.step import initial_model

from conftest import LEARNED_SCALE


def fingerprint(model) -> list:
    """Two sums over the state dict's tensors (position-weighted, and absolute) and three draws of torch's
    generator after the build: the weights and the generator state a run's training goes on from.

    Sums rather than a digest of the bytes: torch draws normal numbers with other instructions on a CPU
    without AVX2, which may move their last bits; any change of the draws moves these sums by far more.
    """
    tensors = [v.double() for v in model.state_dict().values() if v.is_floating_point()]
    return [float(sum((i + 1) * t.sum() for i, t in enumerate(tensors))), float(sum(t.abs().sum() for t in tensors)),
            torch.randint(0, 2**31, (3,)).tolist()]


# Measured with the trainer as it was before validation moved beside the builder (every stored run was made so):
# resnet8 of width 4 on the synthetic dataset, the trainer's initial net (row, seed) -> fingerprint.
ROWS = {"identity": {}, "exclusive-gate-b-6": {"shortcut": "exclusive-gate", "shortcut_args": {"b": -6.0}},
        "conv1x1": {"shortcut": "projection-all"}, "projection": {"shortcut": "projection"}}
STORED = {
    ("identity", 0): [2167.61443, 650.358628, [2105068864, 1263158296, 1535167529]],
    ("exclusive-gate-b-6", 0): [-3009.260492, 884.093419, [8549674, 1226077403, 977769951]],
    ("exclusive-gate-b-6", 1): [-2412.418978, 872.864225, [948035505, 491269135, 956467259]],
    ("conv1x1", 0): [5069.336539, 767.10744, [1073577901, 946534025, 2129624603]],
    ("projection", 0): [4309.46313, 749.814849, [960432428, 2094925481, 178865098]],
}


@pytest.mark.parametrize("row, seed", sorted(STORED))
def test_built_in_rows_keep_the_initial_weights_of_the_stored_runs(row, seed):
    cfg = validate_config({"dataset": "synthetic", "arch": "resnet8", "width": 4, "seed": seed, **ROWS[row]})
    torch.manual_seed(12345)  # whatever the process drew before: the run seeds its own net
    total, absolute, draws = fingerprint(initial_model(cfg, 4, 3))
    want = STORED[(row, seed)]
    assert total == pytest.approx(want[0], rel=1e-7) and absolute == pytest.approx(want[1], rel=1e-7)
    assert draws == want[2]


def test_validation_draws_nothing_from_torchs_generator(tmp_path):
    path = tmp_path / "scale_plugin.py"
    path.write_text(LEARNED_SCALE)
    load_plugin(str(path))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    check_model_args("resnet8", "exclusive-gate", width=4, b=-6.0)  # a throwaway gate: a 1x1 conv drawn
    check_model_args("resnet14", "learned-scale", width=6, init=0.5)  # a plugin: a whole net probed
    assert torch.equal(before, torch.get_rng_state())
    # and building draws the net alone: the same seed, the same net, validated or not
    a = fingerprint(seeded_model(3, "resnet8", "learned-scale", width=4, init=0.5))
    check_model_args("resnet8", "learned-scale", width=4, init=0.25)
    b = fingerprint(seeded_model(3, "resnet8", "learned-scale", width=4, init=0.5))
    assert a == b


def test_seeded_model_is_the_net_the_stored_draws_then_the_builder_make():
    torch.manual_seed(0)
    plain = build_model("resnet8", "exclusive-gate", width=4, b=-6.0)
    seeded = seeded_model(0, "resnet8", "exclusive-gate", width=4, b=-6.0)
    # the gate's throwaway instance drew first: the conv weights differ from an unprefixed build
    assert not torch.equal(plain.stem[0].weight, seeded.stem[0].weight)
