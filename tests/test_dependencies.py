"""What the package imports is what pyproject declares; an optional extra is asked for by name."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _deptry(where: Path):
    return subprocess.run([sys.executable, "-m", "deptry", "."], cwd=where, capture_output=True, text=True)


def test_every_imported_package_is_declared():
    done = _deptry(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_fails_when_a_dependency_is_not_declared(tmp_path):
    # the report's statistics need scipy: a pyproject without it must be caught
    pyproject = (ROOT / "pyproject.toml").read_text()
    lines = [line for line in pyproject.splitlines() if not line.strip().startswith('"scipy')]
    assert len(lines) < len(pyproject.splitlines()), "pyproject declares scipy on a line of its own"
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    shutil.copytree(ROOT / "ablation", tmp_path / "ablation", ignore=shutil.ignore_patterns("__pycache__"))
    done = _deptry(tmp_path)
    assert done.returncode != 0
    assert "scipy" in done.stdout + done.stderr


def _without_extras(tmp_path, *argv):
    """Run a command where ray and tensorboard cannot be imported, as after ``pip install -e .``."""
    block = tmp_path / "block"
    block.mkdir(exist_ok=True)
    (block / "sitecustomize.py").write_text("import sys\nfor name in ('ray', 'tensorboard'):\n"
                                            "    sys.modules[name] = None  # as if not installed\n")
    env = {**os.environ, "PYTHONPATH": f"{block}:{ROOT}"}
    return subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True, text=True, env=env)


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    ray = _without_extras(tmp_path, "ablation.run", "--backend", "ray", "--dry-run", "--dataset", "synthetic",
                          "--variants", "identity", "--out", str(tmp_path / "o1"))
    board = _without_extras(tmp_path, "ablation.train", "dataset=synthetic", "arch=resnet8", "steps=2", "evals=1",
                            "tensorboard=true", f"out={tmp_path / 'o2'}")
    for done, extra in ((ray, "[ray]"), (board, "[tensorboard]")):
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and extra in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_the_study_runs_without_the_extras(tmp_path):
    done = _without_extras(tmp_path, "ablation.run", "--dry-run", "--dataset", "synthetic", "--variants", "identity",
                           "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    assert "identity" in done.stdout
