"""The same config and seed build the same net in any process, and a study's plugins travel with it.

One small study with a built-in row (exclusive gating, b = -6: its shortcut draws) and a plugin row
(tests/conftest.py's ``learned-scale``) is trained twice, by ``Study.run(jobs=1)`` and by the command line
with ``--jobs 2``, each run first writing the digest of the net the trainer builds for it; the same digest is
then taken in a fresh process and in this one after other nets and plugin probes. The study's report is then
rebuilt in a new process without ``--plugin`` (:mod:`ablation.nets.plugins`), and with its plugin edited or gone.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablation import run
from ablation import gather as gather_cli
from ablation import report as report_cli
from ablation.api.results import load
from ablation.api.study import Study
from ablation.core.layout import ResultsDir
from ablation.nets.models import build_model, check_model_args
from ablation.training import data as datasets
from ablation.training.config import validate_config
from ablation.training.step import build

from conftest import LEARNED_SCALE

TESTS = Path(__file__).resolve().parent
SHORTCUTS = ("exclusive-gate", "learned-scale")
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
    """A study's train_fn: write the digest of the trainer's net for this context and row, then train."""
    from ablation.training.loop import train

    where = Path(os.environ["ABLATION_TEST_CAPTURE"])
    (where / f"{os.environ['ABLATION_TEST_CONTEXT']}-{cfg['shortcut']}").write_text(trainer_digest(cfg))
    return train(cfg, run_dir)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study trained by ``Study.run(jobs=1)`` (folder ``study``) and by the command line (``cli``)."""
    root = tmp_path_factory.mktemp("same")
    plugin = root / "my_shortcuts.py"
    plugin.write_text(LEARNED_SCALE)
    exps = root / "experiments"
    exps.mkdir()
    (exps / "same.toml").write_text(EXPERIMENT)
    (exps / "presets.toml").write_text(f'[tiny]\ndescription = "tiny"\ndata_dir = "{root / "data"}"\n')
    (root / "captured").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("ABLATION_TEST_CAPTURE", str(root / "captured"))
        # this process, which loaded the plugin and validated (so probed) every row of its plan before training
        mp.setenv("ABLATION_TEST_CONTEXT", "study")
        Study(experiment="same", variants="all", out=root / "study", plugins=[str(plugin)],
              experiments=exps, preset="tiny").run(jobs=1, progress=False, train_fn=capture)
        # two worker processes, which load the plugin themselves
        mp.setenv("ABLATION_TEST_CONTEXT", "cli")
        argv = ["--experiments", str(exps), "--preset", "tiny", "--experiment", "same", "--variants", "all", "--out",
                str(root / "cli"), "--plugin", str(plugin), "--jobs", "2", "--quiet"]
        assert run.main(argv, train_fn=capture) == 0
    return {"root": root, "plugin": plugin, "exps": exps, "out": root / "study"}


def test_the_same_config_and_seed_build_the_same_net_in_four_contexts(study):
    root, plugin = study["root"], study["plugin"]
    configs = {}
    for config in (root / "cli/runs").glob("*/config.json"):
        cfg = json.loads(config.read_text())
        configs[cfg["shortcut"]] = cfg
    assert sorted(configs) == sorted(SHORTCUTS)
    # a fresh process that has built nothing
    code = (f"import sys, json; from ablation.nets.registry import load_plugin; "
            f"load_plugin({str(plugin)!r}); import test_same_net as t; "
            f"print(json.dumps({{k: t.trainer_digest(c) for k, c in json.loads(sys.argv[1]).items()}}))")
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)  # this module, importable
    fresh = subprocess.run([sys.executable, "-c", code, json.dumps(configs)], capture_output=True, text=True,
                           check=True, cwd=root, env={**os.environ, "PYTHONPATH": path})
    # this process, after building other nets and probing the plugin on other nets
    build_model("resnet14", "exclusive-gate", width=8, b=0.0)
    check_model_args("resnet20", "learned-scale", width=2, init=0.5)
    check_model_args("resnet8", "learned-scale", width=6)
    here = {k: trainer_digest(c) for k, c in configs.items()}

    captured = {c: {s: (root / "captured" / f"{c}-{s}").read_text() for s in SHORTCUTS} for c in ("study", "cli")}
    contexts = {"fresh": json.loads(fresh.stdout), "here": here, **captured}
    for s in SHORTCUTS:
        assert len({contexts[c][s] for c in contexts}) == 1, (s, {c: contexts[c][s][:12] for c in contexts})
    assert here["exclusive-gate"] != here["learned-scale"]


def _report(out, cwd) -> subprocess.CompletedProcess:
    """``python -m ablation.report OUT`` in a new process, which has loaded no plugin."""
    return subprocess.run([sys.executable, "-m", "ablation.report", str(out), "--quiet"], capture_output=True,
                          text=True, cwd=cwd)


def test_the_report_loads_the_studys_plugins_and_names_one_missing_or_changed(study, tmp_path, capsys):
    out, plugin = ResultsDir(study["out"]), study["plugin"]
    recorded = out.read_manifest()["plugins"]
    assert recorded == [{"plugin": str(plugin), "path": str(plugin.resolve()), "shortcuts": ["learned-scale"],
                         "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()}]
    hashes = {json.loads(p.read_text())["shortcut"]: p.parent.name for p in out.runs.glob("*/config.json")}

    def measured(path):
        return set(path.read_text().split()) if path.is_file() else set()

    # a new process, elsewhere, without --plugin: every row, with its lesion study and its signal
    for cached in (out.lesion_csv, out.signal_csv):
        cached.unlink()
    done = _report(out.path, tmp_path)
    assert done.returncode == 0, done.stderr
    for h in hashes.values():
        assert h in out.lesion_csv.read_text() and h in out.signal_csv.read_text()
    assert "Not computed" not in out.readme.read_text()

    # the plugin gathered with the runs
    assert gather_cli.main([str(out.path), "--out", str(tmp_path / "gathered"), "--experiments", str(study["exps"]),
                            "--preset", "tiny", "--experiment", "same", "--variants", "all"]) == 0
    assert ResultsDir(tmp_path / "gathered").read_manifest()["plugins"] == recorded

    source = plugin.read_text()
    try:
        plugin.write_text(source + "# edited\n")
        out.lesion_csv.unlink()
        done = _report(out.path, tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and str(plugin) in lines[0] and "changed" in lines[0]
        lesion = out.lesion_csv.read_text()
        assert hashes["exclusive-gate"] in lesion and hashes["learned-scale"] not in lesion
        readme = out.readme.read_text()
        assert "shortcut 'learned-scale' is from plugin" in readme and "gate-b-6" in readme and "learned" in readme

        plugin.unlink()  # this process registered the plugin's shortcut long ago: the record is checked all the same
        assert report_cli.main([str(out.path), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "missing" in err and str(plugin) in err
        with pytest.warns(UserWarning, match="my_shortcuts.py.*missing"):
            assert set(load(out.path).runs["variant"]) == {"gate-b-6", "learned"}
    finally:
        plugin.write_text(source)
