"""Ladders: an experiment's rows at several values of one setting (depth, length), as data (no training)."""

import csv
import textwrap
from pathlib import Path

import pytest

from ablation.core.errors import ConfigError
from ablation.nets import registry
from ablation.study import catalogue
from ablation.study import experiments as ex
from ablation.study.expansion import expand
from ablation.study.selection import select


WARMUP_110 = {"warmup_until_error": 0.8, "warmup_max_iters": 100}  # He 2015 Sec. 4.2, capped at 100 iterations


ROOT = Path(__file__).resolve().parents[1]


def _by_row(exps, runs):
    axis = exps["depth_ladder"].axis
    return {(axis["rows"][r.variant], exps["depth_ladder"].variant(r.variant).depth, r.seed): r for r in runs}


def test_the_quick_ladder_is_identity_mappings_run_with_depth(exps, presets):
    """Each rung under quick is `--experiment identity_mappings --depth D` (+ the 110 warm-up): the same
    configs, so the same hashes, and the runs trained that way are the ladder's."""
    ladder = exps["depth_ladder"]
    assert ladder.axis["values"] == [20, 32, 56, 110] and ladder.axis["key"] == "depth"
    assert ladder.axis["rows_of"] == ["identity_mappings"] and ladder.axis["paper_at"] == 110
    mine = _by_row(exps, expand(exps, ladder.variants, presets["quick"], seeds=3))
    im = exps["identity_mappings"]
    assert len(mine) == 4 * len(im.variants) * 3
    for depth in (20, 32, 56, 110):
        runs = expand(exps, im.variants, presets["quick"], seeds=3, overrides={"depth": depth},
                         settings=WARMUP_110 if depth == 110 else {})
        for r in runs:
            twin = mine[(r.variant, depth, r.seed)]
            assert twin.config == r.config and twin.hash == r.hash, (r.key, depth)
            assert twin.config["arch"] == f"resnet{depth}"  # not shrunk by the quick preset's arch_map
    # the warm-up is the 110 rung's only: the others keep the quick preset's fixed 3 iterations
    assert {(k[1], r.config["warmup_until_error"], r.config["warmup_max_iters"]) for k, r in mine.items()} == {
        (20, 0.0, 3), (32, 0.0, 3), (56, 0.0, 3), (110, 0.8, 100)}


def test_the_paper_ladder_at_110_is_table_1(exps, presets):
    ladder, im = exps["depth_ladder"], exps["identity_mappings"]
    rung = [v for v in ladder.variants if v.depth == 110]
    mine = {(ladder.axis["rows"][r.variant], r.seed): r.hash for r in expand(exps, rung, presets["paper"])}
    assert mine == {(r.variant, r.seed): r.hash for r in expand(exps, im.variants, presets["paper"])}
    paper = expand(exps, ladder.variants, presets["paper"], seeds=1)
    # He 2016's fixed warm-up at every depth: lr 0.01 for 400 iterations
    assert {(r.config["arch"], r.config["warmup_lr"], r.config["warmup_until_error"], r.config["warmup_max_iters"])
            for r in paper} == {(f"resnet{d}", 0.01, 0.0, 400) for d in (20, 32, 56, 110)}


def test_the_ladder_is_in_no_all(exps, presets):
    quick = select(exps, None, "all", registry.list_shortcuts())
    assert len(quick) == 15 and not any(v.experiment == "depth_ladder" for v in quick)
    paper = select(exps, None, "all", registry.list_shortcuts(), presets["paper"].all_rows)
    assert not any(v.experiment == "depth_ladder" for v in paper)
    assert not any(v.experiment == "depth_ladder" for v in select(exps, "all"))
    assert len(select(exps, "depth_ladder")) == 48
    assert [v.key for v in select(exps, None, "original@110", [])] == ["depth_ladder:original@110"]


def test_rows_keep_the_source_rows_paper_numbers_and_claims(exps):
    ladder, im = exps["depth_ladder"], exps["identity_mappings"]
    for v in ladder.variants:
        src = im.variant(ladder.axis["rows"][v.name])
        assert (v.label, v.paper, v.protocol, v.column) == (src.label, src.paper, src.protocol, f"depth {v.depth}")
    assert ladder.claims == [] and len(ladder.axis["claims"]) == len(im.claims)
    assert ladder.meta()["axis"]["claims"][1]["lower"] == ["original", "scale-0.5-0.5"]


def test_depth_override_leaves_the_ladder_alone(exps, presets):
    row = exps["depth_ladder"].variant("original@56")
    [r] = expand(exps, [row], presets["quick"], seeds=1, overrides={"depth": 20})
    assert r.config["arch"] == "resnet56"


SOURCE = """
name = "tiny"
title = "t"
paper_metric = "test error (%)"
[base]
arch = "resnet110"
[[variant]]
name = "a"
shortcut = "identity"
paper = 1.0
"""

LADDER = """
name = "tiny_ladder"
title = "t at two depths"
rows_of = "tiny"
key = "depth"
values = [8, 14]
[at.14]
lr = 0.2
[at.14.presets.small]
warmup_max_iters = 7
"""


def _dir(tmp_path, ladder=LADDER, source=SOURCE):
    (tmp_path / "tiny.toml").write_text(textwrap.dedent(source))
    (tmp_path / "tiny_ladder.toml").write_text(textwrap.dedent(ladder))
    (tmp_path / "presets.toml").write_text('[small]\nsteps = 20\nwarmup_max_iters = 3\n'
                                           '[small.arch_map]\nresnet110 = "resnet32"\n[full]\n')
    return tmp_path


def test_per_depth_config_everywhere_and_per_preset(tmp_path):
    d = _dir(tmp_path)
    exps, presets = catalogue.load_experiments([d]), catalogue.load_presets([d])
    rows = exps["tiny_ladder"].variants
    assert [v.name for v in rows] == ["a@8", "a@14"]
    quick = {r.variant: r.config for r in expand(exps, rows, presets["small"])}
    paper = {r.variant: r.config for r in expand(exps, rows, presets["full"])}
    assert (quick["a@8"]["arch"], quick["a@14"]["arch"]) == ("resnet8", "resnet14")
    assert (quick["a@8"]["lr"], quick["a@14"]["lr"], paper["a@14"]["lr"]) == (0.1, 0.2, 0.2)
    assert (quick["a@8"]["warmup_max_iters"], quick["a@14"]["warmup_max_iters"]) == (3, 7)
    assert paper["a@14"]["warmup_max_iters"] == 2000  # the quick-only key stays under quick


@pytest.mark.parametrize("edit, message", [
    (('rows_of = "tiny"', 'rows_of = "tinny"'), "rows_of names unknown experiment 'tinny' (did you mean 'tiny'?)"),
    (("values = [8, 14]", "values = [8, 14, 15]"), "depth 15 is not 6n+2"),
    (("values = [8, 14]", "values = [8, 8, 14]"), "lists a value twice"),
    (("values = [8, 14]", "values = []"), "values must be a non-empty list"),
    (("values = [8, 14]", "values = [8, 14.5]"), "values of a depth ladder must be whole numbers"),
    (("[at.14]", "[at.20]"), "[at.20] is not one of the values"),
    (('key = "depth"', 'key = "stepz"'), "key 'stepz' is neither depth nor a config key (did you mean 'steps'?)"),
    (('key = "depth"', 'key = "threads"'), "key 'threads' cannot be laddered"),
    (('key = "depth"', 'key = "seed"'), "--seeds sets the seeds"),
    (("lr = 0.2", "lr = 0.2\ndepth = 8"), "[at.14] sets 'depth', the key the ladder varies"),
    (("lr = 0.2", "lrr = 0.2"), "unknown key 'lrr' (did you mean 'lr'?)"),
    (("warmup_max_iters = 7", "warmup_max_iter = 7"), "presets.small: unknown key 'warmup_max_iter'"),
    (('title = "t at two depths"', 'titel = "t"'), "unknown key 'titel' in a ladder file"),
])
def test_a_bad_ladder_file_is_one_line(tmp_path, edit, message):
    with pytest.raises(ConfigError) as e:
        catalogue.load_experiments([_dir(tmp_path, LADDER.replace(*edit))])
    assert message in str(e.value) and "\n" not in str(e.value) and "tiny_ladder.toml" in str(e.value)


def test_depth_needs_a_cifar_basic_net(tmp_path):
    with pytest.raises(ConfigError, match="depth applies to CIFAR basic nets"):
        catalogue.load_experiments([_dir(tmp_path, source=SOURCE.replace('"resnet110"', '"resnet164"'))])


STEPS_LADDER = """
name = "tiny_length"
title = "t at two lengths"
rows_of = "tiny"
key = "steps"
values = [40, 10]
"""


def test_a_ladder_over_a_config_key_is_the_row_run_with_that_key_set(tmp_path):
    """A rung of a steps ladder is the source row run with --set steps=N: the same config and hash, its
    milestones at the preset's fractions of N; rows are <row>@<value>, columns "steps N", numbers sorted."""
    d = _dir(tmp_path, STEPS_LADDER)
    (d / "presets.toml").write_text('[small]\nsteps = 20\nmilestones_at = [0.5, 0.75]\n[small.arch_map]\n'
                                    'resnet110 = "resnet32"\n[full]\n')
    exps, presets = catalogue.load_experiments([d]), catalogue.load_presets([d])
    lad = exps["tiny_length"]
    assert [v.name for v in lad.variants] == ["a@10", "a@40"]
    assert [v.column for v in lad.variants] == ["steps 10", "steps 40"]
    assert lad.axis["key"] == "steps" and lad.axis["values"] == [10, 40]
    for n in (10, 40):
        [rung] = expand(exps, [lad.variant(f"a@{n}")], presets["small"], seeds=1)
        [twin] = expand(exps, exps["tiny"].variants, presets["small"], seeds=1, settings={"steps": n})
        assert rung.config == twin.config and rung.hash == twin.hash
        assert rung.config["milestones"] == [round(n * 0.5), round(n * 0.75)]
    assert "steps" in lad.variant("a@40").own_keys()  # the row sets it: no preset overrides it


def test_the_depth_ladder_keeps_the_committed_hashes(exps, presets):
    """The general ladder reads depth_ladder.toml into the runs the committed reference holds: same hashes."""
    committed = {(r["variant"], int(r["seed"])): r["hash"]
                 for r in csv.DictReader(open(ROOT / "results/reference/ladder-quick-amd-epyc/runs.csv"))}
    runs = expand(exps, exps["depth_ladder"].variants, presets["quick"], seeds=5)
    got = {(r.variant, r.seed): r.hash for r in runs}
    assert len(committed) == 168 and all(got[k] == h for k, h in committed.items())


def test_the_length_ladders_first_rung_is_the_shipped_quick_study(exps, presets):
    """length_ladder's 500 rung is identity_mappings under quick: the hashes of the shipped study's runs
    (all but dropout-0.5, whose shipped runs predate its file naming rescale = true)."""
    shipped = {(r["variant"], int(r["seed"])): r["hash"]
               for r in csv.DictReader(open(ROOT / "results/reference/quick-amd-epyc/runs.csv"))
               if r["experiment"] == "identity_mappings"}
    runs = expand(exps, exps["length_ladder"].variants, presets["quick"], seeds=5)
    got = {(r.variant, r.seed): r.hash for r in runs}
    same = [k for k, h in shipped.items() if got.get((f"{k[0]}@500", k[1])) == h]
    assert {v for v, _ in shipped} - {v for v, _ in same} == {"dropout-0.5"}
    assert {r.config["steps"] for r in runs} == {500, 2000, 8000}


def test_a_ladder_of_two_experiments_runs_each_row_as_its_own(exps, presets):
    """length_ladder takes Table 1's rows and some of modern's: each runs with its own experiment's [base] and
    presets (the hash of --experiment modern --set steps=N), and a claim is the ladder's only where it runs
    every row of it, `lowest` among its own experiment's rows."""
    lad = exps["length_ladder"]
    assert lad.axis["rows_of"] == ["identity_mappings", "modern"]
    for source in ("identity_mappings", "modern"):
        chosen = {lad.axis["rows"][v.name] for v in lad.variants if lad.axis["sources"][v.name] == source}
        twins = expand(exps, [v for v in exps[source].variants if v.name in chosen], presets["quick"], seeds=2,
                       settings={"steps": 2000})
        mine = {(r.variant, r.seed): r.hash for r in expand(exps, lad.variants, presets["quick"], seeds=2)}
        assert twins and all(mine[(f"{r.variant}@2000", r.seed)] == r.hash for r in twins)
    says = [c["says"] for c in lad.axis["claims"]]
    assert any(s.startswith("stochastic depth is not worse than identity (margin 1 point") for s in says)
    assert not any("SkipInit" in s for s in says)  # skipinit-nobn is not among its rows
    lowest = next(c for c in lad.axis["claims"] if c["lowest"])
    assert "nf-ws" not in lowest["among"] and "dropout-0.5-mask" in lowest["among"]


def test_a_row_in_two_sources_of_a_ladder_is_one_line(tmp_path):
    two = LADDER.replace('rows_of = "tiny"', 'rows_of = ["tiny", "tiny2"]')
    d = _dir(tmp_path, two)
    (d / "tiny2.toml").write_text(textwrap.dedent(SOURCE).replace('name = "tiny"', 'name = "tiny2"'))
    with pytest.raises(ConfigError, match="row 'a' is in both tiny and tiny2"):
        catalogue.load_experiments([d])


def test_the_dry_run_of_a_ladder_lists_the_cost_of_each_rung(tmp_path, capsys):
    from ablation import run as R

    assert R.main(["--experiment", "length_ladder", "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("length_ladder: "))
    assert "steps 500 (" in line and "steps 2000 (" in line and "steps 8000 (" in line
    hours = [float(part.split(", ")[1].split()[0]) for part in line.split("; ")]
    assert hours[0] < hours[1] < hours[2]  # four times the iterations each
