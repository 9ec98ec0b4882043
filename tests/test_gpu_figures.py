"""The GPU figures of docs/cluster.md and README.md against the output they were read from
(benchmarks/h200-2026-12-04): a figure typed wrong, or a log replaced without the page, fails here."""

import ast
import csv
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "h200-2026-12-04"
PAGE = (ROOT / "docs" / "cluster.md").read_text()
README = " ".join((ROOT / "README.md").read_text().split())


@pytest.fixture(scope="module")
def log() -> str:
    return (BENCH / "log.txt").read_text() + (BENCH / "gpu_check_rest.txt").read_text()


@pytest.fixture(scope="module")
def block() -> str:
    found = re.search(r"<!-- gpu figures: benchmarks/h200-2026-12-04 -->(.*?)<!-- /gpu figures -->", PAGE, re.S)
    assert found, "docs/cluster.md has no block of GPU figures"
    return " ".join(found.group(1).split())


def gpu_check_rows(log: str) -> dict:
    rows = re.findall(r"^(\S+)\s+resnet110\s+[\d,]+\s+float32\s+(\d+)\s+([\d.]+)\s+\S+\s+(\w+)$", log, re.M)
    return {name: (ips, peak, status) for name, ips, peak, status in rows}


def packed(log: str) -> dict:
    return {int(n): float(s) for n, s in re.findall(r"runs per GPU (\d+): finished \d+, .*? sum (\d+)", log)}


def test_every_row_of_the_gpu_check_is_the_logs(log, block):
    rows = gpu_check_rows(log)
    assert len(rows) == 12 and all(status == "ok" for _, _, status in rows.values())
    table = {name: (ips, peak) for name, ips, peak in re.findall(r"\| ([a-z][\w.-]*) \| (\d+) \| ([\d.]+) \|", block)}
    assert table == {name: (ips, peak) for name, (ips, peak, _) in rows.items()}
    rest = int(re.search(r"4 rows, 0 failed, (\d+) s in all", log).group(1))
    assert f"{rest} s in a second call" in block
    # the first call's eight rows: from its gpu_check heading to the next part's, as the script stamped them
    stamps = re.findall(r"^=== (gpu_check|bench)[^\n]*\((\d+):(\d+):(\d+)\)$", log, re.M)
    start, end = ((int(h) * 3600 + int(m) * 60 + int(s)) for _, h, m, s in stamps)
    assert f"after eight rows ({end - start} s" in block
    assert f"take about {('three', 'four', 'five')[round((end - start + rest) / 60) - 3]} minutes" in block
    loss = float(re.search(r"^dropout-0\.5\s+resnet110\s.*?\s([\d.]+)\s+ok$", log, re.M).group(1))
    assert f"about {loss:.1e}".replace("e+", "e") in block


def test_the_benchmark_sentence_is_the_logs(log, block):
    bench = json.loads(re.search(r"=== bench cuda resnet110[^\n]*\n(\{.*?\n\})", log, re.S).group(1))
    assert f"harness {round(bench['harness_images_per_s'])} images/s" in block
    assert f"conventional loop {round(bench['conventional_images_per_s'])} images/s" in block
    assert f"a speed-up of {bench['speedup']:.2f}x" in block
    assert f"matmul rate {round(bench['matmul_flops_per_s'] / 1e12)} TFLOP/s" in block
    assert f"(MFU {bench['harness_mfu']:.4f})" in block and bench["harness_mfu"] < 0.01  # "under 1%"


def test_the_packed_runs_table_is_the_logs_sums_and_their_ratios(log, block):
    sums = packed(log)
    assert sorted(sums) == [1, 2, 4, 8]
    for n, total in sums.items():
        assert f"| {n} | {total:.0f} | {total / sums[1]:.2f}x |" in block, n
    assert f"{sums[8] / sums[1]:.2f}x one run's throughput" in README
    assert round(sums[8] / sums[1]) == 5  # "eight at once give five times one run's throughput"


def test_the_paper_preset_run_is_its_runs_csv(log, block):
    run = next(csv.DictReader((BENCH / "paperfm_runs.csv").open()))
    printed = ast.literal_eval(re.search(r"^\{'status'.*\}$", log, re.M).group(0))
    assert printed["images_per_s"] == run["images_per_s"] and run["status"] == "ok"
    assert f"in {run['time_s']} s, {run['images_per_s']} images/s" in block
    assert f"final test error {run['final_test_error']}%" in block
    assert run["precision"] == "float32" and run["arch"] == "resnet110" and run["iterations"] == "1500"
    assert f"ResNet-110 at {run['images_per_s']} images/s in float32" in README
    minutes = 64000 * 128 / float(run["images_per_s"]) / 60
    assert f"takes about {round(minutes)} minutes" in " ".join(PAGE.split())
