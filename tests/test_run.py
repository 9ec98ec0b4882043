"""The study runner: skip, resume, force, errors, the command line and its bad inputs."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablation.study import catalogue
from ablation.study import experiments as ex
from ablation.study import expansion
from ablation import run
from ablation.study import grid
from ablation.study import pool
from ablation.training import loop as trainer

from conftest import FakeTrainer, tiny_args, tiny_toml, tiny_grid as _grid, tiny_options

ROOT = Path(__file__).resolve().parent.parent

def test_finished_runs_are_skipped_and_shared_configs_train_once(tiny, tmp_path):
    runs = _grid(tiny, seeds=2)
    runs = runs + [ex.Run("other", "identity", 0, runs[0].config, runs[0].hash)]  # same config, second row
    fake = FakeTrainer()
    r = grid.run_grid(runs, tmp_path / "out", train_fn=fake, jobs=1, quiet=True)
    assert (r["trained"], r["skipped"], len(fake.calls)) == (4, 0, 4)
    assert all(c["quiet"] for c in fake.calls)
    r = grid.run_grid(runs, tmp_path / "out", train_fn=fake, jobs=1, quiet=True)
    assert (r["trained"], r["skipped"], len(fake.calls)) == (0, 4, 4)
    r = grid.run_grid(runs[:1], tmp_path / "out", train_fn=fake, jobs=1, quiet=True, force=True)
    assert (r["trained"], r["skipped"], len(fake.calls)) == (1, 0, 5)


def test_an_interrupted_run_resumes_and_finished_ones_stay(tiny, tmp_path):
    runs = _grid(tiny)  # identity, then plain
    runs.sort(key=lambda r: r.variant != "identity")
    fake = FakeTrainer(interrupt_on="plain")
    r = grid.run_grid(runs, tmp_path / "out", train_fn=fake, jobs=1, quiet=True)
    assert r["interrupted"] and r["trained"] == 1
    plain = next(x for x in runs if x.variant == "plain")
    assert (tmp_path / "out/runs" / plain.hash / "checkpoint.pt").exists()
    assert not (tmp_path / "out/runs" / plain.hash / "summary.json").exists()
    r = grid.run_grid(runs, tmp_path / "out", train_fn=fake, jobs=1, quiet=True)
    assert not r["interrupted"] and (r["trained"], r["skipped"]) == (1, 1)
    assert fake.resumed == [plain.hash]


def test_a_run_that_raises_is_recorded_and_the_rest_go_on(tiny, tmp_path, capsys):
    fake = FakeTrainer(raise_on="identity")
    r = grid.run_grid(_grid(tiny), tmp_path / "out", train_fn=fake, jobs=1, quiet=True)
    assert (r["trained"], r["errors"]) == (1, 1)
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_command_line_end_to_end_with_report(tiny, tmp_path, capsys):
    fake = FakeTrainer()
    out = tmp_path / "res"
    argv = [*tiny_args(tiny), "--out", str(out), "--jobs", "1", "--seeds", "3"]
    assert run.main(argv, train_fn=fake) == 0
    assert len(fake.calls) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["runs"]) == 6 and manifest["preset"] == "tiny"
    table = (out / "tables/tiny.md").read_text()
    # identity: final errors 16, 17, 18; 17 +- t(0.975, 2) * 1 / sqrt(3) = 17 +- 4.303 / 1.732
    assert "17.00 (median)" in table and "17.00 ± 1.00 [14.52, 19.48]" in table
    readme = (out / "README.md").read_text()
    assert "HOLDS: identity beats plain" in readme
    assert (out / "runs.csv").read_text().count("\n") == 7
    assert run.main(argv, train_fn=fake) == 0  # nothing left to train
    assert len(fake.calls) == 6
    inv = [json.loads(x) for x in (out / "invocations.jsonl").read_text().splitlines()]
    assert [i["trained"] for i in inv] == [6, 0] and inv[1]["skipped"] == 6


def test_dry_run_trains_nothing_and_prints_the_grid(tiny, tmp_path, capsys):
    fake = FakeTrainer()
    assert run.main(["--experiments", str(tiny), "--out", str(tmp_path / "o"), "--dry-run",
                     "--preset", "tiny-paper", "--experiment", "tiny"], train_fn=fake) == 0
    out = capsys.readouterr().out
    assert not fake.calls and not (tmp_path / "o").exists()
    assert out.count("  to train\n") == 4 and "4 distinct runs, 4 to train" in out and "TFLOP" in out


def test_list_names_shortcuts_experiments_and_presets(capsys):
    assert run.main(["--list"]) == 0
    out = capsys.readouterr().out
    for word in ("exclusive-gate(b=0.0)", "scale(lam_s=0.5, lam_f=1.0)", "identity_mappings", "shortcut-gate-b-6",
                 "degradation", "quick:", "paper:"):
        assert word in out


def test_a_plugin_shortcut_can_be_named_in_variants(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quick preset's data_dir is relative
    plugin = tmp_path / "mygate.py"
    plugin.write_text(textwrap.dedent("""
        from ablation.nets.shortcut_base import Shortcut
        from ablation.nets.registry import register_shortcut

        @register_shortcut("half-skip-test", formula="y = F(x) + 0.5 x")
        class HalfSkip(Shortcut):
            def forward(self, x, fx):
                return fx + 0.5 * self.match(x)
    """))
    fake = FakeTrainer()
    argv = ["--plugin", str(plugin), "--variants", "half-skip-test", "--out", str(tmp_path / "o"), "--jobs", "1",
            "--dataset", "synthetic"]
    assert run.main(argv + ["--dry-run"], train_fn=fake) == 0
    assert "identity_mappings  half-skip-test" in capsys.readouterr().out
    assert run.main(argv, train_fn=fake) == 0
    assert [c["shortcut"] for c in fake.calls] == ["half-skip-test"]
    assert "shortcut 'half-skip-test'" in (tmp_path / "o/tables/identity_mappings.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--variants", "orignal"], "unknown variant 'orignal' (did you mean 'original'?)"),
    (["--experiment", "degradaton"], "unknown experiment 'degradaton' (did you mean 'degradation'?)"),
    (["--preset", "quik"], "unknown preset 'quik' (did you mean 'quick'?)"),
    (["--depth", "21"], "--depth 21 is not 6n+2"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--jobs", "zero"], "--jobs must be a whole number"),
    (["--dataset", "mnist"], "dataset='mnist' is not one of"),
    (["--plugin", "no_such_plugin_module"], "cannot import plugin"),
    (["--varaints", "all"], "unrecognized arguments: --varaints"),
    (["--depth", "x"], "invalid int value"),
    (["--address", "auto"], "--address applies to --backend ray only"),
    (["--cpus-per-run", "2"], "--cpus-per-run applies to --backend ray only"),
    (["--backend", "ray", "--jobs", "2"], "--jobs applies to --backend local"),
    (["--backend", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run must be 0, a fraction of one GPU"),
    (["--backend", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be 0, a fraction of one GPU"),
    (["--backend", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be a whole number >= 1"),
    (["--backend", "slurm"], "argument --backend: invalid choice: 'slurm'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    fake = FakeTrainer()
    assert _exit_code(argv + ["--out", str(tmp_path / "o")], fake) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and not fake.calls and not (tmp_path / "o").exists()


def test_backend_ray_without_ray_says_how_to_install_it(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError
    fake = FakeTrainer()
    argv = [*tiny_args(tiny), "--out", str(tmp_path / "o"), "--backend", "ray"]
    assert run.main(argv, train_fn=fake) == 2 and run.main(argv + ["--dry-run"], train_fn=fake) == 2
    err = capsys.readouterr().err
    assert err == "error: --backend ray needs Ray, which is not installed here: pip install -e '.[ray]'\n" * 2
    assert not fake.calls and not (tmp_path / "o").exists()


def _exit_code(argv, train_fn):
    """main()'s return value, or the code of the SystemExit that argparse raises."""
    try:
        return run.main(argv, train_fn=train_fn)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("edit, message", [
    (("shortcut = \"identity\"", "shortcutt = \"identity\""), "unknown key 'shortcutt' (did you mean 'shortcut'?)"),
    (("width = 4", "widht = 4"), "unknown key 'widht' (did you mean 'width'?)"),
    (("width = 4", "frobnicate = 4"), "unknown key 'frobnicate'"),
    (("steps = 6", "steps = [6"), "malformed TOML"),
    (("width = 4", "width = 0"), "width must be"),
    (('dataset = "synthetic"', 'dataset = "cifar100"\ndownload = false'), "dataset 'cifar100' not found"),
])
def test_bad_experiment_files_are_one_line_and_exit_2(tiny, edit, message, capsys, tmp_path):
    (tiny / "tiny.toml").write_text(tiny_toml().replace(*edit))
    fake = FakeTrainer()
    assert run.main([*tiny_args(tiny), "--out", str(tmp_path / "o")], train_fn=fake) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not fake.calls


def test_the_installed_command_exits_2_on_bad_input():
    p = subprocess.run([sys.executable, "-m", "ablation.run", "--variants", "nope"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stderr.startswith("error: unknown variant 'nope'")
    assert "Traceback" not in p.stderr


# --- with the real trainer ----------------------------------------------------------------------


def test_real_trainer_parallel_then_skip_then_resume(tiny, tmp_path):
    runs = _grid(tiny)
    out = tmp_path / "out"
    r = grid.run_grid(runs, out, jobs=2, quiet=True)
    assert (r["trained"], r["errors"], r["jobs"]) == (2, 0, 2)
    for x in runs:
        s = json.loads((out / "runs" / x.hash / "summary.json").read_text())
        assert s["iterations"] == 6 and s["status"] in ("ok", "fail")
    r = grid.run_grid(runs, out, jobs=1, quiet=True)
    assert (r["trained"], r["skipped"]) == (0, 2)

    # interrupt one run after a checkpoint, then let the runner resume it
    [ident] = [x for x in runs if x.variant == "identity"]
    cfg = {**ident.config, "checkpoint_every": 2, "seed": 1}
    resumed = ex.Run("tiny", "identity", 1, cfg, expansion.config_hash(cfg))

    def stop_at_3(cfg, run_dir):
        def cb(it):
            if it == 3:
                raise KeyboardInterrupt
        return trainer.train(cfg, run_dir, callback=cb)

    r = grid.run_grid([resumed], out, train_fn=stop_at_3, jobs=1, quiet=True)
    assert r["interrupted"] and (out / "runs" / resumed.hash / "checkpoint.pt").exists()
    assert not (out / "runs" / resumed.hash / "summary.json").exists()
    r = grid.run_grid([resumed], out, jobs=1, quiet=True)
    assert r["trained"] == 1 and not r["interrupted"]
    whole = tmp_path / "whole"
    trainer.train(cfg, whole)

    def curve(d):
        return [{k: v for k, v in json.loads(line).items() if k not in ("wall_time", "images_per_s")}
                for line in (d / "history.jsonl").read_text().splitlines()]

    assert curve(out / "runs" / resumed.hash) == curve(whole)


def test_depth_applies_to_single_depth_experiments_and_says_what_it_left(tmp_path, capsys):
    assert run.main(["--variants", "original,degradation:plain-56", "--depth", "14", "--dry-run",
                     "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    grid = {line.split()[1]: line.split()[4] for line in captured.out.splitlines()[1:3]}
    quick = catalogue.load_presets()["quick"]
    assert grid == {"original": "resnet14", "plain-56": quick.arch_map["resnet56"]}
    assert "leaves the depth sweep of degradation" in captured.err


def test_two_drivers_on_one_folder_train_each_run_once(tiny, tmp_path):
    out = tmp_path / "shared"
    argv = [sys.executable, "-m", "ablation.run", *tiny_args(tiny), "--out", str(out), "--jobs", "1",
            "--seeds", "3", "--set", "steps=60", "--set", "evals=3", "--set", "threads=1", "--quiet"]
    drivers = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for d in drivers:
        _, err = d.communicate(timeout=600)
        assert d.returncode == 0, err
    trained = [json.loads(line)["trained"] for line in (out / "invocations.jsonl").read_text().splitlines()]
    assert len(trained) == 2 and sum(trained) == 6
    curves = []
    for run_dir in (out / "runs").iterdir():
        curves.append([json.loads(line)["iteration"] for line in (run_dir / "history.jsonl").read_text().splitlines()])
        assert not (run_dir / "claim.json").exists()
    # one trainer wrote each: no interleaved or repeated points, the same points in every run
    assert len(curves) == 6 and all(c == sorted(set(c)) and c == curves[0] and c[-1] == 60 for c in curves)


def test_set_overrides_every_run_and_is_checked_before_anything_runs(tiny, tmp_path, capsys):
    base = [*tiny_args(tiny), "--out", str(tmp_path / "o"), "--dry-run"]
    assert run.main(base) == 0
    plain = capsys.readouterr().out
    assert run.main(base + ["--set", "lr=0.01", "--set", "width=null"]) == 0
    changed = capsys.readouterr().out
    hashes = lambda out: [line.split()[3] for line in out.splitlines()[1:3]]  # noqa: E731
    assert hashes(plain) != hashes(changed)  # a different config is a different run
    exps = catalogue.load_experiments([tiny])
    runs = expansion.expand(exps, exps["tiny"].variants, catalogue.load_presets([tiny])["tiny"],
                            settings={"lr": 0.01, "width": None})
    assert all(r.config["lr"] == 0.01 and r.config["width"] is None for r in runs)
    assert sorted(hashes(changed)) == sorted(r.hash for r in runs)
    for bad, says in ((["--set", "lrr=0.1"], "did you mean 'lr'"), (["--set", "lr=fast"], "lr must be a number"),
                      (["--set", "lr"], "expected --set KEY=VALUE")):
        assert run.main(base + bad) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err
    assert not (tmp_path / "o").exists()


def test_paper_dry_run_lists_every_row_with_its_source_and_cost(capsys, monkeypatch, tmp_path):
    """--preset paper --variants all: every row of every experiment file (a ladder's rows are the ladder's own
    study), with the paper's number and source."""
    from ablation.study import cost

    # the FLOP count of the 1001- and 1202-layer nets is cost.py's to test; here only the listing matters
    monkeypatch.setattr(cost, "estimate", lambda configs: [{"params": 1, "flops": 1, "train_flops": 7e9,
                                                            "memory": 1} for _ in configs])
    assert run.main(["--preset", "paper", "--variants", "all", "--dry-run", "--seeds", "1",
                     "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    exps = catalogue.load_experiments()
    rows = [v for e in exps.values() if not e.axis for v in e.variants]  # a ladder runs only when named
    lines = {tuple(line.split()[:2]): line for line in out.splitlines()[1:] if line.strip()}
    for v in rows:
        line = lines[(v.experiment, v.name)]
        assert f"({v.source})" in line and "7.0" in line, line  # the source, and the cost in GFLOP
    assert f"{len(rows)} rows" in out
    assert "6.43 (mean 6.61 +- 0.16), best (He 2015 Table 6)" in lines[("degradation", "residual-110")]
    assert ">60 (He 2015 Fig. 6 caption" in lines[("degradation", "plain-110")]
    assert "4.92 (mean 4.89 +- 0.14), median" in lines[("preactivation", "preact-1001")]


def test_threads_per_run_follow_the_requested_jobs_not_the_runs_left(monkeypatch):
    """Issue 9, item 8: a resumed study's last run trains on as many threads as it would have uninterrupted."""
    monkeypatch.setattr(pool, "cores", lambda: 4)
    cpu = [{"device": "cpu"}]
    last = pool.local_backend(2, 1, cpu)  # --jobs 2, one run left
    assert isinstance(last, pool.LocalPool) and last.jobs == 1 and last.threads() == 1
    assert pool.local_backend(None, 1, cpu).threads() == 1  # auto: one per core of four, one run left
    assert pool.local_backend(None, 9, cpu).jobs == 4
    assert pool.local_backend(1, 5, cpu).threads() is None  # one job: torch's choice, as before


def test_a_dataset_override_composes_with_the_quick_preset_and_the_readme_says_so(tmp_path, capsys, monkeypatch):
    """Issue 9, item 6: --dataset synthetic under the quick preset trains (no run errs) and says what it set."""
    monkeypatch.chdir(tmp_path)
    fake = FakeTrainer()
    argv = ["--variants", "original", "--dataset", "synthetic", "--out", str(tmp_path / "o"), "--jobs", "1"]
    assert run.main(argv + ["--dry-run"], train_fn=fake) == 0
    captured = capsys.readouterr()
    assert "note: eval_subset=2000 is more than the 256 test images of synthetic" in captured.err
    assert captured.out.count("  to train\n") == 1
    assert run.main(argv, train_fn=fake) == 0 and len(fake.calls) == 1
    assert fake.calls[0]["eval_subset"] is None and fake.calls[0]["dataset"] == "synthetic"
    readme = (tmp_path / "o" / "README.md").read_text()
    assert 'Set on the command line over the preset: dataset="synthetic".' in readme


# --- one folder, one setting: checked where the manifest is written ------------------------------


def test_two_settings_started_together_on_a_new_folder_train_one(tiny, tmp_path):
    """Both plans see a new folder; the second to write its manifest is refused under the lock, before it trains."""
    from ablation.api import pipeline
    from ablation.core.errors import ConfigError

    out = tmp_path / "out"
    plans = [pipeline.plan(out=out, settings={"steps": s}, **tiny_options(tiny)) for s in (4, 5)]
    first, second = FakeTrainer(), FakeTrainer()
    with pipeline.open_backend(plans[0], jobs=1, train_fn=first) as b:
        pipeline.execute(plans[0], b, command="first", train_fn=first, quiet=True, jobs=1)
    with pytest.raises(ConfigError, match=r"holds runs made with steps=4 \(preset tiny\); this command sets steps=5"):
        with pipeline.open_backend(plans[1], jobs=1, train_fn=second) as b:
            pipeline.execute(plans[1], b, command="second", train_fn=second, quiet=True, jobs=1)
    assert len(first.calls) == 2 and second.calls == []
    assert len(list((out / "runs").iterdir())) == 2
    assert json.loads((out / "manifest.json").read_text())["overrides"] == {"steps": 4}


def test_a_folder_whose_manifest_predates_recorded_settings_is_judged_by_its_runs(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*tiny_args(tiny), "--out", str(out), "--jobs", "1", "--quiet"]
    assert run.main(argv, train_fn=FakeTrainer()) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["overrides"]  # as written before folders recorded their settings
    (out / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    fake = FakeTrainer()
    assert run.main([*argv, "--set", "steps=4"], train_fn=fake) == 2
    err = capsys.readouterr().err
    assert "holds tiny:identity seed 0 as run" in err and "made with other settings than this command's" in err
    assert fake.calls == []
    assert run.main(argv, train_fn=fake) == 0 and fake.calls == []  # its own settings: every run is done


def test_a_reference_folder_given_to_report_that_holds_none_of_its_preset_is_one_line(tiny, tmp_path, capsys):
    from ablation import report

    out, other = tmp_path / "out", tmp_path / "other"
    assert run.main([*tiny_args(tiny), "--out", str(out), "--jobs", "1", "--quiet"],
                    train_fn=FakeTrainer()) == 0
    (out / "reference.csv").write_text("left,from,before\n")  # an earlier comparison the README no longer shows
    other.mkdir()
    capsys.readouterr()
    assert report.main([str(out), "--reference", str(other)]) == 2
    assert f"--reference {other} holds no reference study" in capsys.readouterr().err
    (other / "paper-study").mkdir()
    (other / "paper-study" / "reference.toml").write_text('preset = "paper"\nmachine = "m"\nprecision = "p"\n'
                                                          'torch = "t"\n')
    assert report.main([str(out), "--reference", str(other)]) == 2
    assert "holds no reference study of preset tiny besides this folder, only paper-study (preset paper)" in \
        capsys.readouterr().err
    assert report.main([str(out), "--quiet"]) == 0  # the shipped references: no row of the tiny study in them
    assert not (out / "reference.csv").exists()
