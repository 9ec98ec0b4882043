"""A run's initial net is a function of its config and seed alone, in any process, and stays the net its hash names.

:func:`ablation.training.step.initial_model` seeds torch's generator itself; validation (the throwaway shortcut, a
plugin's probe) draws from a fork of it (:func:`ablation.nets.models.check_model_args`); and the draws every stored
run made before its net are kept, in one place (:func:`ablation.nets.models.draws_before_the_net`).
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ablation import run
from ablation.api.study import Study
from ablation.nets.models import build_model, check_model_args, seeded_model
from ablation.nets.shortcuts import load_plugin
from ablation.training import data as datasets
from ablation.training.config import validate_config
from ablation.training.step import build, initial_model

TESTS = Path(__file__).resolve().parent

# The README's plugin: its constructor draws nothing, but its probe builds a whole net.
PLUGIN = textwrap.dedent("""
    import torch
    from ablation import Shortcut, register_shortcut

    @register_shortcut("learned-scale", formula="y = F(x) + a x, a learned", paper="(mine)")
    class LearnedScale(Shortcut):
        def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", init: float = 1.0):
            super().__init__(in_channels, out_channels, stride, match)
            self.a = torch.nn.Parameter(torch.tensor(init))

        def forward(self, x, fx):
            return fx + self.a * self.match(x)
""")


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
    path.write_text(PLUGIN)
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


# --- the same config in four contexts ---------------------------------------------------------------------

EXPERIMENT = """name = "same"
title = "Same net anywhere"
paper_metric = "test error (%)"
[base]
arch = "resnet8"
width = 4
dataset = "synthetic"
steps = 2
milestones = []
evals = 1
eval_batch_size = 256
fail_chance_fraction = 0.99
[[variant]]
name = "gate-b-6"
shortcut = "exclusive-gate"
shortcut_args = {b = -6.0}
[[variant]]
name = "learned"
shortcut = "learned-scale"
"""


def digest(model) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def trainer_digest(cfg: dict) -> str:
    """The digest of the net the trainer builds for ``cfg``, as its loop does: validated, its data loaded, built."""
    cfg = validate_config(cfg)
    return digest(build(cfg, datasets.load_for(cfg), torch.device("cpu"))[0])


def capture(cfg, run_dir):
    """A study's train_fn: write the trainer's initial net's digest for this context and row, then train."""
    from ablation.training.loop import train

    where = Path(os.environ["ABLATION_TEST_CAPTURE"])
    (where / f"{os.environ['ABLATION_TEST_CONTEXT']}-{cfg['shortcut']}").write_text(trainer_digest(cfg))
    return train(cfg, run_dir)


def test_the_same_config_and_seed_build_the_same_net_in_any_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plugin = tmp_path / "my_shortcuts.py"
    plugin.write_text(PLUGIN)
    exps = tmp_path / "experiments"
    exps.mkdir()
    (exps / "same.toml").write_text(EXPERIMENT)
    (exps / "presets.toml").write_text(f'[quick]\ndescription = "tiny"\ndata_dir = "{tmp_path / "data"}"\n')
    captured = tmp_path / "captured"
    captured.mkdir()
    monkeypatch.setenv("ABLATION_TEST_CAPTURE", str(captured))
    shortcuts = ("exclusive-gate", "learned-scale")

    # Study.run(jobs=1): this process, which loaded the plugin and validated (probed) every row in its plan
    monkeypatch.setenv("ABLATION_TEST_CONTEXT", "study")
    Study(experiment="same", variants="all", out=tmp_path / "study", plugins=[str(plugin)],
          experiments_dir=exps).run(jobs=1, progress=False, train_fn=capture)
    # the command line with --jobs 2: two worker processes that load the plugin themselves
    monkeypatch.setenv("ABLATION_TEST_CONTEXT", "cli")
    argv = ["--experiments-dir", str(exps), "--experiment", "same", "--variants", "all", "--out",
            str(tmp_path / "cli"), "--plugin", str(plugin), "--jobs", "2", "--quiet"]
    assert run.main(argv, train_fn=capture) == 0
    configs = {}
    for config in (tmp_path / "cli/runs").glob("*/config.json"):
        cfg = json.loads(config.read_text())
        configs[cfg["shortcut"]] = cfg
    assert sorted(configs) == sorted(shortcuts)
    # a fresh process that has built nothing
    code = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); from ablation.nets.shortcuts import load_plugin; "
            f"load_plugin({str(plugin)!r}); import test_initial_weights as t; "
            f"print(json.dumps({{k: t.trainer_digest(c) for k, c in json.loads(sys.argv[1]).items()}}))")
    fresh = subprocess.run([sys.executable, "-c", code, json.dumps(configs)], capture_output=True, text=True,
                           check=True)
    # this process, after building other nets and probing the plugin on other nets
    build_model("resnet14", "exclusive-gate", width=8, b=0.0)
    check_model_args("resnet20", "learned-scale", width=2, init=0.5)
    check_model_args("resnet8", "learned-scale", width=6)
    here = {k: trainer_digest(c) for k, c in configs.items()}

    contexts = {"fresh": json.loads(fresh.stdout), "here": here,
                **{c: {s: (captured / f"{c}-{s}").read_text() for s in shortcuts} for c in ("study", "cli")}}
    for s in shortcuts:
        assert len({contexts[c][s] for c in contexts}) == 1, (s, {c: contexts[c][s][:12] for c in contexts})
    assert contexts["here"]["exclusive-gate"] != contexts["here"]["learned-scale"]
