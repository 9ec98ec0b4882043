"""experiments/gpu_check.py, the paper preset's GPU smoke check: the parts a CPU can run."""

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "experiments" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--device", "cpu", "--steps", "2", "--warmup", "1", "--set", "arch=resnet8", "--set", "width=4"]


def test_each_row_trains_under_the_paper_preset_on_the_cpu(gpu_check, capsys):
    assert gpu_check.main(TINY + ["--rows", "original,dropout-0.5-mask,conv1x1"]) == 0
    out = capsys.readouterr().out
    assert "under --preset paper on cpu" in out and "3 rows, 0 failed" in out
    assert out.count(" float32 ") == 3  # the paper preset trains in float32
    assert all(f"{row} " in out for row in ("original", "dropout-0.5-mask", "conv1x1"))


def test_a_row_that_errors_is_reported_and_the_others_still_run(gpu_check, capsys, monkeypatch):
    real = gpu_check.check_row

    def flaky(cfg, steps, warmup):
        if cfg["shortcut"] == "scale":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(cfg, steps, warmup)

    monkeypatch.setattr(gpu_check, "check_row", flaky)
    assert gpu_check.main(TINY + ["--rows", "original,scale-0.5-0.5"]) == 1
    out = capsys.readouterr().out
    assert "scale-0.5-0.5" in out and "error: RuntimeError: CUDA out of memory (simulated)" in out
    assert "2 rows, 1 failed" in out


@pytest.mark.parametrize("argv, message", [
    (["--device", "cpu", "--rows", "orignal"], "did you mean 'original'"),
    (["--device", "cpu", "--steps", "3", "--warmup", "3"], "--warmup (3) must be below --steps (3)"),
    (["--device", "cpu", "--preset", "fast"], "unknown preset 'fast'"),
])
def test_bad_input_is_one_line_and_exit_2(gpu_check, capsys, argv, message):
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
