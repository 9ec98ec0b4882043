"""Fixtures shared by the tests: a tiny study on synthetic data, its experiments folder, a fake trainer,
a finished tiny run.

The tiny study is two rows (identity and plain) of a resnet8 of width 4 on the synthetic dataset,
with a claim and the papers' marks so that the report has something to test. It is a user's folder of
experiment files, read beside the shipped ones (``--experiments DIR``), with presets of its own:
``tiny`` (its data in the test's folder) and ``tiny-paper`` (two seeds). A test that needs a
longer schedule (the kill drills, the storage tests) passes its own ``[base]`` keys to
:func:`tiny_toml` or to the ``experiments_dir`` factory instead of copying the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# the [base] of the tiny study: a few steps of a resnet8 of width 4, whole test split in one batch
TINY_BASE = {"arch": "resnet8", "width": 4, "dataset": "synthetic", "steps": 6, "milestones": [], "evals": 2,
             "eval_batch_size": 256, "fail_chance_fraction": 0.99}

TINY_ROWS = """
[[variant]]
name = "identity"
shortcut = "identity"
paper = 5.0
[[variant]]
name = "plain"
shortcut = "plain"
paper = "fail"
[[claim]]
says = "identity beats plain"
lower = ["identity", "plain"]
"""


# the README's plugin: a shortcut with a learned scale of x (its constructor draws nothing; its probe builds a net)
LEARNED_SCALE = """
import torch
from ablation import Shortcut, register_shortcut

@register_shortcut("learned-scale", formula="y = F(x) + a x, a learned", paper="(mine)")
class LearnedScale(Shortcut):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", init: float = 1.0):
        super().__init__(in_channels, out_channels, stride, match)
        self.a = torch.nn.Parameter(torch.tensor(init))

    def forward(self, x, fx):
        return fx + self.a * self.match(x)
"""


def _toml_value(v) -> str:
    return json.dumps(v)  # the values of TINY_BASE (strings, numbers, lists of numbers) read the same in TOML


def tiny_toml(**base) -> str:
    """The tiny experiment file, with ``base`` keys over :data:`TINY_BASE`."""
    keys = {**TINY_BASE, **base}
    lines = ['name = "tiny"', 'title = "Tiny: two shortcuts on a small synthetic problem"',
             'paper_metric = "test error (%)"', "in_all = true", "[base]",
             *(f"{k} = {_toml_value(v)}" for k, v in keys.items())]
    return "\n".join(lines) + "\n" + TINY_ROWS


TINY = "tiny"  # the tiny study's preset: nothing over its [base] but where its data goes


def write_experiments(folder: Path, data_dir: Path, presets_extra: str = "", **base) -> Path:
    """``folder`` as a user's experiments folder holding the tiny study and a preset ``tiny`` whose data is in
    ``data_dir``; ``presets_extra`` follows that preset's keys."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.toml").write_text(tiny_toml(**base))
    (folder / "presets.toml").write_text(f'[{TINY}]\ndescription = "tiny"\ndata_dir = "{data_dir}"\n{presets_extra}')
    return folder


def tiny_args(folder) -> list[str]:
    """The runner's options that run the tiny study of ``folder`` (beside the shipped experiments) at its scale."""
    return ["--experiments", str(folder), "--preset", TINY, "--experiment", "tiny"]


def tiny_options(folder) -> dict:
    """The same as :class:`ablation.Study`'s options."""
    return {"experiments": folder, "preset": TINY, "experiment": "tiny"}


@pytest.fixture
def experiments_dir(tmp_path):
    """A factory: ``experiments_dir(**base)`` writes the tiny study into ``tmp_path/experiments``."""
    def make(presets_extra: str = "", **base) -> Path:
        return write_experiments(tmp_path / "experiments", tmp_path / "data", presets_extra, **base)
    return make


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (hash ``abc``) in a results folder of its own, with its one-row ``runs`` table;
    one per test module, as the lesion study and the signal study cache their results beside it."""
    import pandas as pd

    from ablation.core.layout import ResultsDir
    from ablation.training.loop import train

    out = tmp_path_factory.mktemp("res")
    cfg = {"dataset": "synthetic", "data_dir": str(tmp_path_factory.mktemp("data")), "arch": "resnet8", "width": 4,
           "batch_size": 64, "steps": 20, "milestones": [], "evals": 2, "checkpoint_every": 1000, "quiet": True,
           "threads": 1, "grad_norm_points": [0.0, 1.0]}
    results = ResultsDir(out)
    train(cfg, results.run("abc").path)
    runs = pd.DataFrame([{"experiment": "e", "variant": "v", "seed": 0, "status": "ok", "hash": "abc"}])
    return results, runs


@pytest.fixture
def tiny(experiments_dir):
    """The tiny study's experiments folder, with a preset ``tiny-paper`` of two seeds."""
    return experiments_dir("[tiny-paper]\nseeds = 2\n")


def tiny_grid(folder, seeds=1):
    """Every run of the tiny study under its preset."""
    from ablation.study import catalogue, expansion

    exps = catalogue.load_experiments([folder])
    return expansion.expand(exps, exps["tiny"].variants, catalogue.load_presets([folder])[TINY], seeds=seeds)


class FakeTrainer:
    """Writes what the trainer writes, in no time; its errors are a fixed function of the config.

    ``interrupt_on`` (a shortcut) stops the first attempt of that row with Ctrl-C after a checkpoint,
    ``raise_on`` makes that row raise. ``calls`` holds each config trained, ``run_names`` each run folder.
    """

    def __init__(self, interrupt_on=None, raise_on=None):
        self.calls, self.run_names, self.resumed = [], [], []
        self.interrupt_on, self.raise_on = interrupt_on, raise_on

    def __call__(self, cfg, run_dir):
        run_dir = Path(run_dir)
        self.calls.append(cfg)
        self.run_names.append(run_dir.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        if (run_dir / "checkpoint.pt").exists():
            self.resumed.append(run_dir.name)
        (run_dir / "config.json").write_text(json.dumps(cfg))
        if cfg["shortcut"] == self.raise_on:
            raise RuntimeError("boom")
        if cfg["shortcut"] == self.interrupt_on and not (run_dir / "checkpoint.pt").exists():
            (run_dir / "checkpoint.pt").write_text("half")
            raise KeyboardInterrupt
        err = 10.0 if cfg["shortcut"] == "identity" else 30.0
        err += cfg["seed"]
        hist = [{"iteration": i, "epoch": i / 10, "lr": 0.1, "train_loss": 1.0, "train_error": err + 10 - i,
                 "test_loss": 1.0, "test_error": err + 12 - i, "wall_time": i} for i in (2, 4, 6)]
        (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
        summary = {"status": "ok", "reason": None, "final_test_error": err + 6, "best_test_error": err + 6,
                   "final_train_error": err + 4, "params": 1000, "flops": 10000, "iterations": 6, "epochs": 0.6,
                   "time_s": 1.0, "images_per_s": 100.0, "device": "cpu"}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary


@pytest.fixture(scope="session")
def exps():
    """The shipped experiment files (read once; tests must not change them)."""
    from ablation.study import catalogue

    return catalogue.load_experiments()


@pytest.fixture(scope="session")
def presets():
    """The shipped presets."""
    from ablation.study import catalogue

    return catalogue.load_presets()
