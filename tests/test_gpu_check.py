"""python -m ablation.gpu_check, the paper preset's GPU smoke check: the parts a CPU can run."""

import subprocess
import sys

import pytest

from ablation import gpu_check as check


@pytest.fixture
def gpu_check():
    return check


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
    (["--device", "cpu", "--experiment", "identity_mapping"], "did you mean 'identity_mappings'"),
])
def test_bad_input_is_one_line_and_exit_2(gpu_check, capsys, argv, message):
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_it_is_a_command_of_the_package(tmp_path):
    """From any folder, with nothing on the path but the package: no file of the checkout is needed."""
    out = subprocess.run([sys.executable, "-m", "ablation.gpu_check", "--device", "cpu", "--steps", "1",
                          "--warmup", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr == "error: --warmup (1) must be below --steps (1)\n"
