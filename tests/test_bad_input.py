"""Every command answers bad input in one line: exit 2, ``error: ...``, no traceback, nothing written or lost.

One table per command (python -m ablation, ablation.train, ablation.run, ablation.report,
ablation.bench), run in-process for speed; one case per command also through the real entry
point, in a subprocess.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ablation
from ablation import __main__ as describe
from ablation import bench, report, run
from ablation import train as trainer

from conftest import tiny_toml, write_experiments, tiny_args, tiny_options

ROOT = Path(__file__).resolve().parent.parent

PLUGINS = {
    "raises.py": "raise RuntimeError('broken on purpose')\n",
    "syntax.py": "def broken(:\n",
    "wrong_shape.py": textwrap.dedent("""
        from ablation.nets.shortcut_base import Shortcut
        from ablation.nets.registry import register_shortcut

        @register_shortcut("wrong-shape-test", formula="y = x (the branch dropped, shapes ignored)")
        class WrongShape(Shortcut):
            def forward(self, x, fx):
                return x
    """),
}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A folder with an experiments dir, plugins, a file, a foreign folder and a results folder; cwd is it.
    The memory limit is fixed, so that what exceeds it does so on any machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABLATION_MEMORY_LIMIT", "8G")
    write_experiments(tmp_path / "exps", tmp_path / "data")
    for name, text in PLUGINS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("someone's own notes\n")
    res = tmp_path / "res"
    (res / "runs").mkdir(parents=True)
    (res / "manifest.json").write_text(json.dumps({"experiments": {}, "runs": {}}))
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "manifest.json").write_text("{not json")
    return tmp_path


@pytest.fixture
def readonly(tmp_path):
    """A read-only folder: chmod where permissions bind, else (as root) a read-only tmpfs, else skip."""
    path = tmp_path / "ro"
    path.mkdir()
    (path / "runs").mkdir()
    (path / "manifest.json").write_text(json.dumps({"experiments": {}, "runs": {}}))
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("no way to make a read-only folder here (root without mount)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with its bytes: what a refused command must leave as it was."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


def refused(call, capsys, root: Path, message: str):
    before = snapshot(root)
    try:
        code = call()
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and message in err, err
    assert snapshot(root) == before, "a refused command wrote or removed files"


# --- python -m ablation ARCH --------------------------------------------------------------------

DESCRIBE = [
    (["resnet21"], "depth 21 of 'resnet21' is not 6n+2"),
    (["resnet20", "--image", "3", "0", "0"], "--image needs three sizes >= 1"),
    (["resnet20", "--shortcut", "exclusive-gate", "--arg", "b=abc"], "b must be a finite number, got 'abc'"),
    (["resnet20", "--shortcut", "dropout", "--arg", "p=nan"], "p must be a finite number, got nan"),
    (["resnet20", "--shortcut", "scale", "--arg", "lam_s=x"], "lam_s must be a finite number"),
    (["resnet20", "--shortcut", "identity", "--arg", "b=1"], "has no parameter 'b'"),
    (["resnet20", "--arg", "b"], "expected --arg KEY=VALUE"),
    (["resnet20", "--shortcut", "nope"], "unknown shortcut 'nope'"),
    (["resnet20", "--order", "preact"], "unknown order 'preact'"),
    (["resnet20", "--width", "0"], "width must be a whole number >= 1"),
    (["resnet20", "--classes", "0"], "num_classes must be a whole number >= 1"),
    (["resnet20", "--plugin", "raises.py"], "failed to import: RuntimeError: broken on purpose"),
    (["resnet20", "--plugin", "syntax.py"], "failed to import (line 1): SyntaxError"),
    (["resnet20", "--plugin", "wrong_shape.py", "--shortcut", "wrong-shape-test"],
     "returned shape (2, 16, 32, 32) where the branch F(x) has (2, 32, 16, 16)"),
    (["resnet20", "--width", "x"], "invalid int value"),
    (["resnet20", "--arg", "order=full-preact"], "--arg order='full-preact': order is an option of the network, "
     "not a parameter of the shortcut; use --order"),
    (["resnet20", "--arg", "width=4"], "width is an option of the network, not a parameter of the shortcut; use --width"),
]


@pytest.mark.parametrize("argv, message", DESCRIBE, ids=[" ".join(a) for a, _ in DESCRIBE])
def test_describe_refuses_in_one_line(place, capsys, argv, message):
    refused(lambda: describe.main(argv), capsys, place, message)


def test_a_wrong_shape_names_the_plugin_file(place, capsys):
    refused(lambda: describe.main(["resnet8", "--plugin", "wrong_shape.py", "--shortcut", "wrong-shape-test"]),
            capsys, place, f"shortcut 'wrong-shape-test' (plugin {place / 'wrong_shape.py'}) returned shape")


# --- python -m ablation.train key=value ... out=DIR ---------------------------------------------

TRAIN_BASE = ["dataset=synthetic", "arch=resnet8", "width=4", "steps=6", "milestones=[]"]
TRAIN = [
    (["out=run"], ["shortcut=exclusive-gate", 'shortcut_args={b="abc"}'], "b must be a finite number, got 'abc'"),
    (["out=run"], ["shortcut=scale", 'shortcut_args={lam_s="x"}'], "lam_s must be a finite number, got 'x'"),
    (["out=run"], ["shortcut=dropout", "shortcut_args={p=1.5}"], "p must be in [0, 1)"),
    (["out=run"], ["seed=99999999999999999999999"], "seed must be between 0 and"),
    (["out=run"], ["seed=-1"], "seed must be between 0 and"),
    (["out=run"], ["milestones=[100]"], "milestones [100] lie beyond steps=6"),
    (["out=run"], ["milestones=[3, 1]"], "milestones must ascend"),
    (["out=run"], ["lr=fast"], "lr must be a number"),
    (["out=run"], ["batch_size=0"], "batch_size must be >= 1"),
    (["out=run"], ["arch=resnet21"], "not 6n+2"),
    (["out=run"], ["dataset=cifar11"], "dataset='cifar11' is not one of"),
    (["out=run"], ["val_split=2000"], "val_split=2000 must be below the 1024 training images of synthetic"),
    (["out=run"], ["steps=1.5"], "must be whole"),
    (["out=run"], ["batchsize=8"], "did you mean 'batch_size'"),
    (["out=run"], ["lr"], "expected key=value"),
    (["out=a_file"], [], "out= a_file is a file"),
    (["out=a_file/run"], [], "cannot be created: a_file is a file"),
    (["out="], [], "out= is empty"),
    (["out=docs"], [], "out= docs holds other files and is not a run folder"),
    ([], [], "give the run directory as out=DIR"),
    (["out=run"], ['shortcut_args={match="projection"}'], "shortcut_args match='projection': match is an option "
     "of the network, not a parameter of the shortcut; set match=... as a config key of its own"),
    (["out=run"], ["batch_size=1", "image_size=4"], "batch_size=1 with image_size=4: resnet8's last feature map is "
     "1x1, so BatchNorm sees one value per channel"),
    (["out=run"], ["image_size=100000"], "resnet8 at batch_size=128 needs about"),
    (["out=run"], ["data_dir=" + "d" * 300], "data_dir dddddddddddddddddddd...: a name of 300 bytes, more than the"),
    (["out=" + "o" * 300], [], "out= oooooooooooooooooooo...: a name of 300 bytes"),
]


@pytest.mark.parametrize("out, words, message", TRAIN, ids=[" ".join(o + w) for o, w, _ in TRAIN])
def test_train_refuses_in_one_line(place, capsys, out, words, message):
    refused(lambda: trainer.main([*TRAIN_BASE, f"data_dir={place / 'data'}", *words, *out]), capsys, place, message)


def test_train_refuses_a_read_only_folder(readonly, capsys):
    refused(lambda: trainer.main([*TRAIN_BASE, f"out={readonly / 'run'}"]), capsys, readonly.parent,
            "cannot be written")


def test_train_refuses_cuda_without_a_gpu(place, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    refused(lambda: trainer.main([*TRAIN_BASE, "device=cuda", "out=run"]), capsys, place, "no CUDA device")


# --- python -m ablation.run ----------------------------------------------------------------------

RUN = [
    (["--seeds", "1000000000", "--dry-run"], "make 2,000,000,000 runs, more than the 100,000"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--jobs", "x"], "--jobs must be a whole number"),
    (["--variants", "orignal"], "unknown variant 'orignal'"),
    (["--variants", ","], "--variants is empty"),
    (["--variants", "nope:identity"], "unknown experiment 'nope'"),
    (["--preset", "quik"], "unknown preset 'quik' (did you mean 'quick'?)"),
    (["--dataset", "mnist"], "dataset='mnist' is not one of"),
    (["--set", "lr=-1"], "--set lr must be >= 1e-12"),
    (["--set", "frob=1"], "--set frob: unknown config key"),
    (["--set", "lr"], "expected --set KEY=VALUE"),
    (["--set", "seed=99999999999999999999999"], "seed must be between 0 and"),
    (["--set", "shortcut_args={b=\"abc\"}", "--variants", "identity"], "has no parameter 'b'"),
    (["--set", "milestones=[1000]"], "milestones [1000] lie beyond steps=6"),
    (["--out", "a_file"], "--out a_file is a file"),
    (["--out", "a_file/sub"], "cannot be created: a_file is a file"),
    (["--out", ""], "--out is empty"),
    (["--out", "docs"], "--out docs holds other files and is not a results folder"),
    (["--out", "garbage"], "garbage/manifest.json is unreadable or not a results manifest"),
    (["--plugin", "raises.py"], "failed to import: RuntimeError: broken on purpose"),
    (["--plugin", "syntax.py"], "failed to import (line 1): SyntaxError"),
    (["--plugin", "missing.py"], "plugin file 'missing.py' not found"),
    (["--plugin", "wrong_shape.py", "--variants", "wrong-shape-test", "--experiment", "tiny"],
     "shortcut 'wrong-shape-test' (plugin"),
    (["--depth", "21"], "--depth 21 is not 6n+2"),
    (["--varaints", "all"], "unrecognized arguments: --varaints"),
    (["--set", 'shortcut_args={match="projection"}'], "match is an option of the network"),
    (["--set", "shortcut_args={width=4}"], "width is an option of the network"),
    (["--set", "batch_size=1", "--set", "image_size=4"], "BatchNorm sees one value per channel"),
    (["--set", "image_size=100000"], "tiny:identity: resnet8 at batch_size=128 needs about"),
    (["--depth", "600002"], "tiny:identity: resnet600002 at batch_size=128 needs about"),
    (["--set", "arch=resnet600002"], "tiny:identity: resnet600002 at batch_size=128 needs about"),
    (["--out", "r" * 300], "--out rrrrrrrrrrrrrrrrrrrr...: a name of 300 bytes, more than the"),
    (["--out", "res/" + "r" * 300], "a name of 300 bytes"),
    (["--experiment", "all", "--variants", "all"], "--experiment all with --variants all names two grids"),
]


class NeverTrain:
    def __call__(self, cfg, run_dir):
        raise AssertionError("a refused study trained")


@pytest.mark.parametrize("argv, message", RUN, ids=[" ".join(a) for a, _ in RUN])
def test_run_refuses_in_one_line(place, capsys, argv, message):
    out = [] if "--out" in argv else ["--out", "res"]
    refused(lambda: run.main([*tiny_args("exps"), *out, *argv], train_fn=NeverTrain()), capsys, place,
            message)


@pytest.mark.parametrize("edit, message", [
    (('name = "plain"', 'name = ["plain"]'), "key 'name' must be str, got ['plain']"),
    (('lower = ["identity", "plain"]', 'lower = ["identity"]'), "lower must be exactly 2 variant names"),
    (('lower = ["identity", "plain"]', 'lowest = "identity"\nwithin = -1'), "within must be >= 0"),
    (None, "every [[variant]] must be a table"),
    (("paper = 5.0", "paper = nan"), "tiny.toml: variant 'identity': paper must be a finite number, got nan"),
    ("claim = [1]", "tiny.toml: every [[claim]] must be a table, got 1"),
    ("variant = []", "tiny.toml: experiment 'tiny' has no variants; add [[variant]] tables"),
])
def test_run_refuses_bad_experiment_files_before_training(place, capsys, edit, message):
    if isinstance(edit, str):  # a top-level key in place of the file's own tables
        table = "[[claim]]" if edit.startswith("claim") else "[[variant]]"
        text = edit + "\n" + tiny_toml().split(table)[0]
    else:
        text = tiny_toml().split("[[variant]]")[0].replace("in_all = true", "variant = [1, 2]") if edit is None \
            else tiny_toml().replace(*edit, 1)
    (place / "exps" / "tiny.toml").write_text(text)
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res"], train_fn=NeverTrain()), capsys, place,
            message)


def test_a_dry_run_of_a_net_too_big_answers_at_once_with_its_memory(place, capsys):
    """--depth 600002: nothing is built (the estimate is from the net's numbers), nothing is timed, nothing written."""
    before, t = snapshot(place), time.perf_counter()
    assert run.main([*tiny_args("exps"), "--out", "res", "--depth", "600002", "--dry-run"],
                    train_fn=NeverTrain()) == 0
    assert time.perf_counter() - t < 60
    out = capsys.readouterr().out
    assert "memory: the biggest, resnet600002 at batch_size=128 needs about" in out, out
    assert "2 of 2 runs to train exceed the 8.0 GiB ABLATION_MEMORY_LIMIT=8G" in out, out
    assert "no run to train fits this machine's memory" in out, out
    assert snapshot(place) == before


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "x.toml").mkdir(), "exps/x.toml is a folder, not an experiment file"),
    (lambda d: (d / "latin.toml").write_bytes('name = "caf\u00e9"\n'.encode("latin-1")),
     "exps/latin.toml is not UTF-8 text (byte 11: b'\\xe9'); save it as UTF-8"),
    (lambda d: (d / "wide.toml").write_bytes('name = "x"\n'.encode("utf-16")), "exps/wide.toml is not UTF-8 text"),
])
def test_run_refuses_unreadable_experiment_files(place, capsys, make, message):
    make(place / "exps")
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res"], train_fn=NeverTrain()), capsys, place,
            message)


@pytest.mark.parametrize("link, message", [
    ({"dangling": "nowhere"}, "--out dangling is a symbolic link to nowhere, which does not exist"),
    ({"loop1": "loop2", "loop2": "loop1"}, "--out loop1 is a loop of symbolic links"),
    ({"dangling": "nowhere"}, "--out dangling/sub is a symbolic link"),
])
def test_run_refuses_an_out_through_a_broken_link(place, capsys, link, message):
    for name, target in link.items():
        os.symlink(target, place / name)
    out = message.split()[1]
    refused(lambda: run.main([*tiny_args("exps"), "--out", out], train_fn=NeverTrain()), capsys, place,
            message.replace("/sub", ""))


def test_run_refuses_a_read_only_folder(readonly, place, capsys):
    refused(lambda: run.main([*tiny_args(str(place / "exps")), "--out", str(readonly)],
                             train_fn=NeverTrain()), capsys, readonly.parent, "cannot be written")


# --- what a study may not be given: a seed (--seeds sets them), names that become paths, clamped values ---

SAFE = "is not a safe name"
STUDY_FILES = [
    (["--set", "seed=5"], None, "--set seed=5: the seeds of a study are 0..N-1, set by --seeds"),
    ([], ("tiny.toml", 'shortcut = "identity"', 'shortcut = "identity"\nseed = 3'),
     "variant 'identity': seed = 3: the seeds of a study are 0..N-1, set by --seeds"),
    ([], ("tiny.toml", "[base]", "[base]\nseed = 1"), "[base]: seed = 1: the seeds of a study are 0..N-1"),
    ([], ("presets.toml", "[tiny]", "[tiny]\nseed = 2"), "[tiny]: seed = 2: the seeds of a study are 0..N-1"),
    ([], ("tiny.toml", 'name = "tiny"', 'name = "../../../escaped"'),
     f"tiny.toml: experiment name '../../../escaped' {SAFE}"),
    ([], ("tiny.toml", 'name = "plain"', 'name = "../plain"'), f"tiny.toml: variant name '../plain' {SAFE}"),
    ([], ("tiny.toml", 'name = "plain"', 'name = "pl/ain"'), f"variant name 'pl/ain' {SAFE}"),
    ([], ("tiny.toml", 'name = "plain"', 'name = ".."'), f"variant name '..' {SAFE}"),
    ([], ("presets.toml", "[tiny]", '[tiny]\n[".."]'), f"presets.toml: preset name '..' {SAFE}"),
    ([], ("tiny.toml", "[base]", '[presets."a/b"]\n[base]'), f"tiny.toml: preset name 'a/b' {SAFE}"),
    (["--set", "batch_size=10000000"], None,
     "batch_size=10000000 is more than the 1024 training images of synthetic"),
    (["--set", "batch_size=600", "--set", "train_subset=500"], None,
     "batch_size=600 is more than the 500 training images of synthetic (train_subset=500)"),
    (["--set", "schedule_unit=epochs", "--set", "steps=0.001"], None,
     "steps=0.001 epochs is less than one iteration"),
    (["--plugin", "bad_name.py", "--variants", "identity"], None, f"shortcut name '../evil' {SAFE}"),
]


@pytest.mark.parametrize("argv, edit, message", STUDY_FILES, ids=[m for _, _, m in STUDY_FILES])
def test_run_refuses_a_seed_an_unsafe_name_or_a_clamped_value(place, capsys, argv, edit, message):
    if edit is not None:
        path = place / "exps" / edit[0]
        path.write_text(path.read_text().replace(edit[1], edit[2], 1))
    (place / "bad_name.py").write_text(BAD_NAME_PLUGIN)
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res", *argv], train_fn=NeverTrain()), capsys,
            place, message)


BAD_NAME_PLUGIN = textwrap.dedent("""
    from ablation.nets.shortcut_base import Shortcut
    from ablation.nets.registry import register_shortcut

    @register_shortcut("../evil")
    class Evil(Shortcut):
        def forward(self, x, fx):
            return fx + x
""")


@pytest.mark.parametrize("words, message", [
    (["batch_size=2000"], "batch_size=2000 is more than the 1024 training images of synthetic"),
    (["schedule_unit=epochs", "steps=0.001"], "steps=0.001 epochs is less than one iteration"),
])
def test_train_refuses_a_value_it_would_clamp(place, capsys, words, message):
    refused(lambda: trainer.main([*TRAIN_BASE, f"data_dir={place / 'data'}", *words, "out=run"]), capsys, place,
            message)


def test_every_shipped_experiment_and_preset_has_safe_names(exps, presets):
    from ablation.core.names import is_safe_name

    assert all(is_safe_name(name) for name in [*exps, *presets])
    assert all(is_safe_name(v.name.split("@")[0]) for e in exps.values() for v in e.variants)


# --- python -m ablation.report DIR --------------------------------------------------------------

REPORT = [
    (["nowhere"], "nowhere is not a folder"),
    (["a_file"], "a_file is not a folder"),
    (["docs"], "holds no results (no manifest.json)"),
    (["garbage"], "garbage/manifest.json is unreadable"),
    (["res"], "res/manifest.json lists no runs"),
    (["res", "--frob"], "unrecognized arguments: --frob"),
]


@pytest.mark.parametrize("argv, message", REPORT, ids=[" ".join(a) for a, _ in REPORT])
def test_report_refuses_in_one_line(place, capsys, argv, message):
    refused(lambda: report.main(argv), capsys, place, message)


def test_report_on_a_read_only_folder_is_one_line(readonly, capsys, tmp_path):
    """Results that read but cannot be written (a read-only copy): one line naming the first file."""
    if os.geteuid() == 0:  # make the mounted folder hold results first, then remount it read-only
        subprocess.run(["mount", "-o", "remount,rw", str(readonly)], check=True)
    else:
        readonly.chmod(0o755)
    _fake_results(readonly)
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
    else:
        readonly.chmod(0o555)
    refused(lambda: report.main([str(readonly)]), capsys, readonly, f"cannot write {readonly / 'runs.csv'}")


def _fake_results(out: Path):
    from ablation.study import catalogue
    from ablation.study import expansion
    from ablation.study import manifest as mf
    from ablation.core.layout import ResultsDir

    exps = catalogue.load_experiments()
    rows = [exps["identity_mappings"].variant("original")]
    runs = expansion.expand(exps, rows, catalogue.load_presets()["quick"])
    ResultsDir(out).write_manifest(mf.manifest(None, catalogue.load_presets()["quick"], exps, rows, runs))


# --- python -m ablation.bench --------------------------------------------------------------------

BENCH = [
    (["--reps", "0"], "--reps must be >= 1"),
    (["--workers", "-1"], "--workers must be >= 0"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--set", "amp=off"], "unknown config key 'amp'"),
    (["--set", "bf16"], "expected --set KEY=VALUE"),
    (["--arch", "resnet21"], "not 6n+2"),
    (["--frob"], "unrecognized arguments: --frob"),
    (["--arch", "resnet18", "--batch", "1"], "batch_size=1 with image_size=32: resnet18's last feature map is 1x1"),
    (["--arch", "resnet18", "--batch", "10000000"], "resnet18 at batch_size=10000000 needs about"),
]


@pytest.mark.parametrize("argv, message", BENCH, ids=[" ".join(a) for a, _ in BENCH])
def test_bench_refuses_in_one_line(place, capsys, argv, message):
    refused(lambda: bench.main(["--steps", "1", "--reps", "1", "--workers", "0", *argv]), capsys, place, message)


# --- the real entry points ----------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["ablation", "resnet20", "--image", "3", "0", "0"], "--image needs three sizes"),
    (["ablation.train", "seed=99999999999999999999999", "out=run"], "seed must be between"),
    (["ablation.run", "--seeds", "1000000000", "--dry-run"], "more than the 100,000"),
    (["ablation.report", "nowhere"], "nowhere is not a folder"),
    (["ablation.bench", "--reps", "0"], "--reps must be >= 1"),
])
def test_entry_points_exit_2_in_one_line(tmp_path, argv, message):
    done = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())


# --- text in other encodings, names the terminal cannot show -----------------------------------


@pytest.mark.parametrize("name, env", [
    ("r\u00e9sultats", {"PYTHONIOENCODING": "ascii"}),  # a name an ASCII terminal cannot show
    (os.fsdecode(b"r\xe9s"), {}),  # bytes that are no UTF-8: the file system takes them, UTF-8 cannot show them
], ids=["ascii-terminal", "undecodable-bytes"])
def test_a_study_named_so_the_terminal_cannot_show_it_is_written_and_reported(tiny, tmp_path, capsys, name, env):
    from conftest import FakeTrainer

    out = tmp_path / name
    assert run.main([*tiny_args(tiny), "--out", str(out), "--jobs", "1"], train_fn=FakeTrainer()) == 0
    assert (out / "README.md").is_file()
    done = subprocess.run([sys.executable, "-m", "ablation.report", os.fsencode(name)], cwd=tmp_path,
                          capture_output=True, timeout=300, env={**os.environ, **env})
    said = (done.stdout + done.stderr).decode("ascii", errors="replace")
    assert done.returncode == 0 and "Traceback" not in said, said
    assert "README.md" in said and ("\\xe9" in said or "\\udce9" in said), said  # the path, escaped


def test_a_results_file_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    from ablation.core.files import CorruptFile, read_text

    path = tmp_path / "notes.md"
    path.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(CorruptFile, match=r"notes.md is not UTF-8 text \(byte 3: b'\\xe9'\)"):
        read_text(path)


def test_text_is_written_as_utf8_whatever_the_locale(tmp_path, monkeypatch):
    from ablation.core.files import write_atomic

    monkeypatch.setattr("locale.getpreferredencoding", lambda *a: "ascii")
    write_atomic(tmp_path / "t.md", "lam \u00b1 0.5")
    assert (tmp_path / "t.md").read_bytes() == "lam \u00b1 0.5".encode()


# --- what a first-time user reads ---------------------------------------------------------------


@pytest.mark.parametrize("main, words", [
    (describe.main, ["--shortcut", "--order", "full-preact", "--match", "projection", "--image", "--arg"]),
    (run.main, ["--preset", "quick", "paper", "--dataset", "fashion-mnist", "synthetic", "cifar10"]),
    (bench.main, ["--set", "bf16=false"]),
    (report.main, ["results folder"]),
])
def test_help_is_plain_text_and_names_the_choices(capsys, main, words):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "``" not in out and "amp=" not in out
    for word in words:
        assert word in out, word


def test_every_option_of_the_commands_has_help():
    for parser in (describe.build_parser(), run.build_parser()):
        missing = [a.dest for a in parser._actions if not a.help]
        assert not missing, f"{parser.prog}: no help for {missing}"


# --- values the trainer would clamp or round, and what runs at once ------------------------------

CLAMPED = [
    (["--set", "evals=100000"], "evals=100000 is more than the 6 iterations of the run: it would evaluate 6 times"),
    (["--set", "milestones=[2.5]"], "milestones entry 2.5 lies between two iterations"),
    (["--set", "milestones=[3, 3]"], "milestones 3 and 3 (iterations) both fall on iteration 3"),
    (["--set", "schedule_unit=epochs", "--set", "steps=1", "--set", "milestones=[0.5, 0.55]"],
     "milestones 0.5 and 0.55 (epochs) both fall on iteration 4"),
    (["--set", "schedule_unit=epochs", "--set", "steps=1", "--set", "milestones=[0.01]"],
     "milestones entry 0.01 (epochs) rounds to iteration 0 (8 iterations per epoch)"),
    (["--jobs", "10000", "--dry-run"], "--jobs 10000 is more than the"),
]


@pytest.mark.parametrize("argv, message", CLAMPED, ids=[m for _, m in CLAMPED])
def test_run_refuses_a_value_the_trainer_would_clamp_or_round(place, capsys, argv, message):
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res", *argv], train_fn=NeverTrain()), capsys,
            place, message)


def test_milestones_at_that_round_together_are_refused(place, capsys):
    """The quick preset's drops at [0.5, 0.75] of steps=3 would both fall on iteration 2."""
    refused(lambda: run.main(["--variants", "original", "--dataset", "synthetic", "--set", "steps=3", "--out", "res",
                              "--dry-run"], train_fn=NeverTrain()), capsys, place,
            "milestones_at [0.5, 0.75] of steps=3 round to iterations [2, 2]")


def test_train_refuses_more_evaluations_than_iterations(place, capsys):
    refused(lambda: trainer.main([*TRAIN_BASE, f"data_dir={place / 'data'}", "evals=100", "out=run"]), capsys, place,
            "evals=100 is more than the 6 iterations")


# --- the public API speaks the command line's words ---------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: ablation.Study(seeds="2"), "--seeds must be a whole number, got '2'"),
    (lambda: ablation.Study(seeds=True), "--seeds must be a whole number, got True"),
    (lambda: ablation.Study(variants=123), "--variants must be text, got 123"),
    (lambda: ablation.Study(out=123), "--out must name a folder, got 123"),
    (lambda: ablation.Study(depth="abc"), "--depth must be a whole number, got 'abc'"),
    (lambda: ablation.Study(plugins=123), "--plugin must name a module or a .py file (or a list of them), got 123"),
    (lambda: ablation.Study(plugins=[None]), "--plugin must name a module or a .py file, got None"),
    (lambda: ablation.load(None), "ablation.load takes a results folder or a reference's name, got None"),
    (lambda: ablation.train("x", "/tmp/o"), "a config must be a table of key = value, got 'x'"),
    (lambda: ablation.Study(**tiny_options("exps"), out="res").run(jobs=2.5), "--jobs must be a whole number"),
])
def test_the_api_raises_config_error_with_the_command_lines_words(place, capsys, call, message):
    before = snapshot(place)
    with pytest.raises(ablation.ConfigError) as e:
        call()
    assert message in str(e.value), str(e.value)
    assert snapshot(place) == before and capsys.readouterr().err == ""


# --- environment variables, plugins, memory, links -------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("inf", "ABLATION_MEMORY_LIMIT='inf' must be a size above 0"),
    ("1e400G", "ABLATION_MEMORY_LIMIT='1e400G' must be a size above 0"),
])
def test_a_bad_memory_limit_is_one_line(place, capsys, monkeypatch, value, message):
    monkeypatch.setenv("ABLATION_MEMORY_LIMIT", value)
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res"], train_fn=NeverTrain()), capsys, place,
            message)


@pytest.mark.parametrize("env, message", [
    ("0,abc", "'abc' is neither a GPU's index nor its UUID"),
    ("1,1", "it names one GPU twice"),
])
def test_a_bad_cuda_visible_devices_is_one_line(env, message):
    from ablation.study.pool import visible_gpus

    with pytest.raises(ablation.ConfigError, match=message):
        visible_gpus(2, env)
    assert visible_gpus(2, "3,GPU-1a2b") == ["3", "GPU-1a2b"] and visible_gpus(0, "junk") == []


EXITS = "import sys\nsys.exit(0)\n"
TAKES_IDENTITY = textwrap.dedent("""
    from ablation.nets.shortcut_base import Shortcut
    from ablation.nets.registry import register_shortcut

    @register_shortcut("identity")
    class Identity(Shortcut):  # the same class name as the built-in: y = F(x), no shortcut at all
        def forward(self, x, fx):
            return fx
""")


@pytest.mark.parametrize("text, message", [
    (EXITS, "plugin 'exits.py' called sys.exit(0) at import; a plugin only registers shortcuts"),
    (TAKES_IDENTITY, "shortcut 'identity' is already registered by Identity (built in); register Identity (plugin"),
])
def test_a_plugin_that_exits_or_takes_a_builtin_name_is_one_line(place, capsys, text, message):
    (place / "exits.py").write_text(text)
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res", "--plugin", "exits.py"],
                             train_fn=NeverTrain()), capsys, place, message)
    from ablation.nets.registry import get_shortcut

    assert get_shortcut("identity").cls.__module__ == "ablation.nets.shortcuts"


def test_a_shortcut_of_main_is_refused_before_workers_would_fail_on_it(place, capsys, monkeypatch):
    from ablation.nets import registry, shortcut_base
    from ablation.study import pool

    class InMain(shortcut_base.Shortcut):
        def forward(self, x, fx):
            return fx + self.match(x)

    InMain.__module__ = "__main__"  # as a notebook cell, or a script's own code, defines it
    registry.register_shortcut("main-only-test")(InMain)
    monkeypatch.setattr(pool, "cores", lambda: 4, raising=False)  # two jobs are allowed on any machine
    try:
        refused(lambda: run.main([*tiny_args("exps"), "--out", "res", "--variants", "main-only-test",
                                  "--experiment", "tiny", "--seeds", "2", "--jobs", "2"], train_fn=NeverTrain()),
                capsys, place, "shortcut 'main-only-test' is registered in __main__, which this process alone knows")
    finally:
        del registry._REGISTRY["main-only-test"]


def test_signal_of_a_net_too_big_refuses_at_once_with_its_estimate(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ablation.signal", "resnet600002"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "ABLATION_MEMORY_LIMIT": "8G"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "resnet600002 at batch 32 needs about" in done.stderr and "8.0 GiB ABLATION_MEMORY_LIMIT=8G" in done.stderr


@pytest.fixture
def lying_access(monkeypatch):
    """os.access says yes where a write fails (NFS squashing root, a read-only export): the write itself must answer."""
    monkeypatch.setattr(os, "access", lambda *a, **k: True)


def test_an_unwritable_out_is_one_line_in_run_train_and_gather(readonly, place, capsys, lying_access):
    refused(lambda: run.main([*tiny_args(str(place / "exps")), "--out", str(readonly)], train_fn=NeverTrain()),
            capsys, readonly, f"cannot write {readonly / '.lock'}")
    refused(lambda: trainer.main([*TRAIN_BASE, f"data_dir={place / 'data'}", f"out={readonly / 'run'}"]), capsys,
            readonly, f"cannot write {readonly / 'run'}")
    src = place / "src"
    (src / "runs").mkdir(parents=True)
    from ablation import gather

    refused(lambda: gather.main([str(src), "--out", str(readonly), "--experiments",
                                 str(place / "exps"), "--preset", "tiny", "--experiment", "tiny"]), capsys, readonly,
            f"cannot write {readonly / '.lock'}")


@pytest.mark.parametrize("link", ["runs", "plots", "tables", "runs/abc123", "invocations.jsonl", ".lock"])
def test_no_write_follows_a_link_out_of_out(place, capsys, link):
    target = place / "elsewhere" / "x"
    target.parent.mkdir()
    target.write_text("") if link.endswith((".jsonl", ".lock")) else target.mkdir()
    shutil.rmtree(place / "res" / link, ignore_errors=True)  # res/runs is there already
    (place / "res" / link).symlink_to(target)
    refused(lambda: run.main([*tiny_args("exps"), "--out", "res"], train_fn=NeverTrain()), capsys, place,
            f"res/{link} is a symbolic link to {target}, outside the results folder")


def test_the_report_follows_no_link_out_of_its_folder(place, capsys):
    from conftest import FakeTrainer

    assert run.main([*tiny_args("exps"), "--out", "res", "--jobs", "1", "--quiet"], train_fn=FakeTrainer()) == 0
    capsys.readouterr()
    target = place / "elsewhere"
    target.mkdir()
    shutil.rmtree(place / "res" / "tables")
    (place / "res" / "tables").symlink_to(target)
    refused(lambda: report.main(["res"]), capsys, place, f"res/tables is a symbolic link to {target}, outside")
