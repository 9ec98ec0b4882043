import json
import subprocess
import sys

import pytest

from ablation.training.benchmark import measure


def test_measure_reports_both_paths_and_consistent_ratios():
    r = measure("resnet8", "cpu", batch=16, steps=1, reps=1, workers=0)
    for key in ("harness_images_per_s", "conventional_images_per_s", "matmul_flops_per_s"):
        assert r[key] > 0
    assert r["speedup"] == pytest.approx(r["harness_images_per_s"] / r["conventional_images_per_s"])
    assert r["harness_mfu"] == pytest.approx(3 * r["forward_flops_per_image"] * r["harness_images_per_s"]
                                             / r["matmul_flops_per_s"])
    assert r["forward_flops_per_image"] > 1e6 and r["matmul_dtype"] == "float32"


def test_command_line_json_and_bad_setting():
    done = subprocess.run([sys.executable, "-m", "ablation.bench", "--arch", "resnet8", "--batch", "8",
                           "--steps", "1", "--reps", "1", "--workers", "0", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["arch"] == "resnet8"
    bad = subprocess.run([sys.executable, "-m", "ablation.bench", "--arch", "resnet8", "--set", "bf17=false"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "bf16" in bad.stderr and bad.stderr.count("\n") == 1
