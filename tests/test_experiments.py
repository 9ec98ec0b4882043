"""Experiment files, presets and grid expansion (no training)."""

import textwrap

import pytest

from ablation.training import config as schema
from ablation.study import catalogue
from ablation.study import experiments as ex
from ablation.study import expansion
from ablation.study import selection
from ablation.nets import registry
from ablation.core.errors import ConfigError


def test_identity_mappings_holds_the_eleven_rows_of_table_1_and_both_dropout_readings(exps):
    e = exps["identity_mappings"]
    papers = {v.name: v.paper for v in e.variants}
    assert papers == {
        "original": 6.61, "scale-0-1": "fail", "scale-0.5-1": "fail", "scale-0.5-0.5": 12.35,
        "exclusive-gate-b0": "fail", "exclusive-gate-b-6": 8.70, "exclusive-gate-b-7": 9.81,
        "shortcut-gate-b0": 12.86, "shortcut-gate-b-6": 6.91, "conv1x1": 12.22, "dropout-0.5": "fail",
        "dropout-0.5-mask": "fail",
    }
    assert e.variant("exclusive-gate-b-6").config == {"shortcut": "exclusive-gate", "shortcut_args": {"b": -6.0}}
    assert e.base["arch"] == "resnet110" and e.fail_above == 20.0
    assert all(v.source == "He 2016 Table 1" and v.protocol == "median" for v in e.variants)
    # each dropout row says which reading it runs; the paper's wording (mask only) is the second row
    assert e.variant("dropout-0.5").config["shortcut_args"] == {"p": 0.5, "rescale": True}
    assert e.variant("dropout-0.5-mask").config["shortcut_args"] == {"p": 0.5, "rescale": False}
    assert "dropout-0.5-mask" not in e.in_all and len(e.in_all) == 11  # the quick study's rows are unchanged


def test_every_shortcut_named_in_the_files_is_registered(exps):
    names = set(registry.list_shortcuts())
    for e in exps.values():
        for v in e.variants:
            assert v.config.get("shortcut", e.base.get("shortcut", "identity")) in names, v.key


def test_degradation_and_activation_numbers(exps):
    d = exps["degradation"]
    assert {v.name: v.paper for v in d.variants if v.column == "residual"} == {
        "residual-20": 8.75, "residual-32": 7.51, "residual-44": 7.17, "residual-56": 6.97, "residual-110": 6.43,
        "residual-1202": 7.93}
    assert d.variant("residual-1202").config["arch"] == "resnet1202"
    assert all(v.paper is None for v in d.variants if v.column == "plain")
    assert d.variant("plain-110").paper_above == 60.0 and "Fig. 6" in d.variant("plain-110").source
    a = exps["activations"]
    assert a.variant("full-preact-164").paper == 5.46 and a.variant("bn-after-add-110").paper == 8.17
    assert {v.column for v in a.variants} == {"ResNet-110", "ResNet-164"}


def test_he_2015_table_6_protocol_is_best_of_5_for_resnet_110_only(exps):
    """Table 6: "For ResNet-110, we run it 5 times and show 'best (mean+-std)'": 6.43 (6.61+-0.16)."""
    d = exps["degradation"]
    r110 = d.variant("residual-110")
    assert (r110.protocol, r110.paper, r110.paper_mean, r110.paper_std) == ("best", 6.43, 6.61, 0.16)
    others = [v for v in d.variants if v.name != "residual-110"]
    assert all(v.protocol == "single" and v.paper_mean is None for v in others)
    rows = {r["variant"]: r for r in d.meta()["rows"]}  # what the report reads from the manifest
    assert (rows["residual-110"]["protocol"], rows["residual-110"]["paper_mean"]) == ("best", 6.61)
    assert rows["plain-110"]["paper_above"] == 60.0 and d.meta()["protocol"] == "single"


def test_resnet_164_rows_use_projection_shortcuts_and_110_rows_zero_padding(exps, presets):
    """He 2016 appendix: projection shortcuts where dimensions increase, for the bottleneck nets."""
    for e in (exps["activations"], exps["preactivation"]):
        for v in e.variants:
            cfg = expansion.merged_config(e, v, presets["paper"])
            want = "projection" if cfg["arch"] in ("resnet164", "resnet1001") else None
            assert v.config.get("match") == want, v.key
            assert schema.validate_config(cfg)["match"] == (want or "zero-pad")


def test_preactivation_holds_he_2016_table_3(exps):
    e = exps["preactivation"]
    pairs = {}
    for v in e.variants:
        pairs.setdefault(v.label, {})[v.config["order"]] = v.paper
    assert pairs == {
        "ResNet-110": {"original": 6.61, "full-preact": 6.37}, "ResNet-164": {"original": 5.93, "full-preact": 5.46},
        "ResNet-1001": {"original": 7.61, "full-preact": 4.92},
        "ResNet-164, CIFAR-100": {"original": 25.16, "full-preact": 24.33},
        "ResNet-1001, CIFAR-100": {"original": 27.82, "full-preact": 22.71}}
    r1001 = e.variant("preact-1001")
    assert (r1001.protocol, r1001.paper_mean, r1001.paper_std) == ("median", 4.89, 0.14)  # Table 4
    assert {v.config.get("dataset", e.base["dataset"]) for v in e.variants if "CIFAR-100" in v.label} == {"cifar100"}


def test_variants_all_is_table_1_plus_plain_and_residual_at_two_depths(exps):
    rows = selection.select(exps, None, "all", registry.list_shortcuts())
    keys = [v.key for v in rows]
    assert len(keys) == 15 and len(set(keys)) == 15
    assert {k for k in keys if k.startswith("degradation:")} == {
        "degradation:plain-20", "degradation:plain-56", "degradation:residual-20", "degradation:residual-56"}
    assert sum(k.startswith("identity_mappings:") for k in keys) == 11
    assert selection.select(exps) == rows  # nothing given means --variants all


def test_select_by_experiment_and_by_name(exps):
    assert len(selection.select(exps, "activations")) == 10
    assert len(selection.select(exps, "all")) == sum(len(e.variants) for e in exps.values() if not e.axis)
    rows = selection.select(exps, None, "original,degradation:plain-110, conv1x1", registry.list_shortcuts())
    assert [v.key for v in rows] == ["identity_mappings:original", "degradation:plain-110", "identity_mappings:conv1x1"]
    # a name unique to another experiment is found there
    assert selection.select(exps, None, "full-preact-164", [])[0].experiment == "activations"


def test_a_registered_shortcut_name_runs_on_the_identity_mappings_base(exps):
    rows = selection.select(exps, None, "zero-pad", registry.list_shortcuts())
    assert len(rows) == 1 and rows[0].experiment == "identity_mappings"
    assert rows[0].config == {"shortcut": "zero-pad"}
    assert selection.select(exps, "activations", "zero-pad", ["zero-pad"])[0].experiment == "activations"


@pytest.mark.parametrize("variants, message", [
    ("orignal", "did you mean 'original'"),
    ("degradation:plain-21", "unknown variant of degradation 'plain-21'"),
    ("nowhere:plain-20", "unknown experiment 'nowhere'"),
    (",", "--variants is empty"),
])
def test_unknown_variants_raise_one_line(exps, variants, message):
    with pytest.raises(ConfigError) as e:
        selection.select(exps, None, variants, registry.list_shortcuts())
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_experiment_suggests(exps):
    with pytest.raises(ConfigError, match="did you mean 'degradation'"):
        selection.select(exps, "degradaton")


def test_quick_preset_changes_scale_not_rows(exps, presets):
    rows = selection.select(exps, "all")
    quick = expansion.expand(exps, rows, presets["quick"], seeds=1)
    paper = expansion.expand(exps, rows, presets["paper"], seeds=1)
    assert [r.key for r in quick] == [r.key for r in paper]
    scale = {"dataset", "image_size", "width", "arch", "steps", "milestones", "batch_size", "warmup_max_iters",
             "evals", "eval_subset", "train_subset", "schedule_unit",
             "augment", "checkpoint_every",  # under one epoch augmentation has nothing to do; see presets.toml
             "lr",  # scaled with the batch size
             # the paper preset runs as the papers did; quick keeps the harness's defaults
             "bf16", "fail_chance_fraction", "normalize", "pad_fill", "bottleneck_stride", "fc_bias_init"}
    for row, q, p in zip(rows, quick, paper):
        changed = {k for k in q.config if q.config[k] != p.config[k]}
        own = set(row.presets.get("quick", {}))  # what a row says of itself under quick (the ladder's 110 warm-up)
        assert changed <= scale | own, (q.key, changed - scale - own)
        for k in ("shortcut", "shortcut_args", "order", "optimizer", "momentum", "weight_decay"):
            assert q.config[k] == p.config[k]
        # the learning rate per image is the paper's
        assert q.config["lr"] / q.config["batch_size"] == pytest.approx(p.config["lr"] / p.config["batch_size"])


def test_merge_order_base_variant_preset_experiment_preset_cli(exps, presets):
    quick = presets["quick"]
    im = exps["identity_mappings"]
    cfg = expansion.merged_config(im, im.variant("original"), quick)
    assert cfg["dataset"] == "fashion-mnist"  # the preset overrides the paper's base
    assert cfg["arch"] == quick.arch_map["resnet110"]  # mapped, not the paper's resnet110
    assert cfg["warmup_lr"] == 0.01  # kept from the base
    seed = exps["seed_cifar2"]
    cfg = expansion.merged_config(seed, seed.variants[0], quick)
    assert cfg["batch_size"] == 64 and cfg["schedule_unit"] == "epochs"  # the experiment's own refinement
    assert cfg["optimizer"] == "adam" and cfg["lr"] == 1e-3
    cfg = expansion.merged_config(im, im.variant("original"), quick, {"dataset": "synthetic", "depth": 14, "device": None})
    assert cfg["dataset"] == "synthetic" and cfg["arch"] == "resnet14" and "device" not in cfg


def test_paper_preset_is_the_papers_setup(exps, presets):
    im = exps["identity_mappings"]
    [run] = expansion.expand(exps, [im.variant("original")], presets["paper"], seeds=1)
    c = run.config
    assert (c["dataset"], c["arch"], c["steps"], c["milestones"], c["batch_size"], c["lr"], c["val_split"]) == (
        "cifar10", "resnet110", 64000, [32000, 48000], 128, 0.1, 0)
    assert presets["paper"].seeds == 5
    d = exps["degradation"]
    [r110] = expansion.expand(exps, [d.variant("residual-110")], presets["paper"], seeds=1)
    [r56] = expansion.expand(exps, [d.variant("residual-56")], presets["paper"], seeds=1)
    assert r110.config["warmup_lr"] == 0.01 and r56.config["warmup_lr"] is None


def test_paper_preset_runs_as_the_papers_did_and_quick_as_before(exps, presets):
    im = exps["identity_mappings"]
    [paper] = expansion.expand(exps, [im.variant("original")], presets["paper"], seeds=1)
    [quick] = expansion.expand(exps, [im.variant("original")], presets["quick"], seeds=1)
    fidelity = ("bf16", "fail_chance_fraction", "normalize", "pad_fill", "bottleneck_stride", "fc_bias_init")
    # float32; no early stop at chance (a non-finite loss still ends a run); per-pixel mean, padded with it;
    # the reference codes' bottleneck stride and classifier bias
    assert [paper.config[k] for k in fidelity] == [False, None, "pixel-mean", "mean", "1x1", "zero"]
    assert [quick.config[k] for k in fidelity] == [schema.DEFAULTS[k] for k in fidelity]
    assert [schema.DEFAULTS[k] for k in fidelity] == [True, 0.25, "channel", "black", "3x3", "uniform"]


def test_paper_preset_variants_all_is_every_row_of_every_experiment(exps, presets):
    every = selection.select(exps, "all")
    assert presets["paper"].all_rows and not presets["quick"].all_rows
    assert selection.select(exps, None, "all", registry.list_shortcuts(), presets["paper"].all_rows) == every
    keys = {v.key for v in every}
    for row in ("degradation:residual-1202", "degradation:plain-110", "identity_mappings:dropout-0.5-mask",
                "activations:full-preact-164", "preactivation:preact-1001", "preactivation:baseline-1001"):
        assert row in keys


def test_depth_override_leaves_depth_sweeps_alone(exps, presets):
    rows = [exps["identity_mappings"].variant("original"), exps["degradation"].variant("plain-56")]
    runs = expansion.expand(exps, rows, presets["quick"], seeds=1, overrides={"depth": 44})
    assert runs[0].config["arch"] == "resnet44"
    assert runs[1].config["arch"] == presets["quick"].arch_map["resnet56"]


@pytest.mark.parametrize("depth", [21, 7, 2, 164 + 1])
def test_depth_not_6n_plus_2_is_refused(exps, presets, depth):
    with pytest.raises(ConfigError, match="not 6n\\+2"):
        expansion.expand(exps, selection.select(exps, "identity_mappings"), presets["quick"], overrides={"depth": depth})


def test_seeds_make_distinct_runs_and_the_hash_ignores_runtime_keys(exps, presets):
    runs = expansion.expand(exps, selection.select(exps), presets["quick"], seeds=3)
    assert len(runs) == 45 and [r.seed for r in runs[:3]] == [0, 1, 2]
    assert len({r.hash for r in runs}) == 45
    again = expansion.expand(exps, selection.select(exps), presets["quick"], seeds=3, overrides={"device": "cpu"})
    assert [r.hash for r in again] == [r.hash for r in runs]
    cfg = dict(runs[0].config)
    assert expansion.config_hash({**cfg, "threads": 1, "quiet": True}) == runs[0].hash
    assert expansion.config_hash({**cfg, "lr": 0.2}) != runs[0].hash


def test_the_same_config_from_two_experiments_shares_a_hash(exps, presets):
    a = expansion.expand(exps, [exps["activations"].variant("original-110")], presets["paper"], seeds=1)[0]
    b = expansion.expand(exps, [exps["identity_mappings"].variant("original")], presets["paper"], seeds=1)[0]
    assert a.hash == b.hash


# --- malformed files ----------------------------------------------------------------------------

GOOD = """
name = "tiny"
title = "t"
paper_metric = "test error (%)"
[base]
arch = "resnet8"
[[variant]]
name = "a"
shortcut = "identity"
paper = 1.0
"""


def _dir(tmp_path, text, presets='[small]\nsteps = 2\n'):
    (tmp_path / "tiny.toml").write_text(textwrap.dedent(text))
    (tmp_path / "presets.toml").write_text(presets)
    return tmp_path


def test_a_good_file_loads(tmp_path):
    e = catalogue.load_experiments([_dir(tmp_path, GOOD)])["tiny"]
    assert e.variants[0].paper == 1.0 and e.in_all == []


@pytest.mark.parametrize("edit, message", [
    (("shortcut = \"identity\"", "shortcutt = \"identity\""), "unknown key 'shortcutt' (did you mean 'shortcut'?)"),
    (("paper = 1.0", "papr = 1.0"), "unknown key 'papr' (did you mean 'paper'?)"),
    (("arch = \"resnet8\"", "arhc = \"resnet8\""), "[base]: unknown key 'arhc' (did you mean 'arch'?)"),
    (("title = \"t\"", "titel = \"t\""), "unknown key 'titel' (did you mean 'title'?)"),
    (("paper = 1.0", "paper = \"failed\""), "paper must be a number or \"fail\""),
    (("paper = 1.0", "paper = true"), "key 'paper' must be"),
    (("name = \"a\"", "name = \"a\"\nname = \"b\""), "malformed TOML"),
    (("[[variant]]", "[[variant]\n"), "malformed TOML"),
    (("name = \"tiny\"", "name = \"tiny\"\nin_all = [\"b\"]"), "in_all names unknown variant 'b'"),
])
def test_malformed_experiment_files_raise_one_line(tmp_path, edit, message):
    d = _dir(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as e:
        catalogue.load_experiments([d])
    assert message in str(e.value) and "\n" not in str(e.value)
    assert "tiny.toml" in str(e.value)


def test_misspelt_preset_key(tmp_path):
    d = _dir(tmp_path, GOOD, presets="[small]\nstpes = 2\n")
    with pytest.raises(ConfigError, match="unknown key 'stpes' \\(did you mean 'steps'\\?\\)"):
        catalogue.load_presets([d])


def test_claims_are_checked_against_rows(tmp_path):
    d = _dir(tmp_path, GOOD + '[[claim]]\nsays = "x"\nlower = ["a", "zz"]\n')
    with pytest.raises(ConfigError, match="claim names unknown variant 'zz'"):
        catalogue.load_experiments([d])


def test_a_bad_value_is_caught_before_training(tmp_path, presets):
    d = _dir(tmp_path, GOOD.replace('shortcut = "identity"', 'shortcut = "identity"\nlr = "fast"'))
    exps = catalogue.load_experiments([d])
    with pytest.raises(ConfigError, match="tiny:a: lr must be a number"):
        expansion.expand(exps, exps["tiny"].variants, catalogue.load_presets([d])["small"])


def test_two_experiments_holding_a_name_need_a_prefix(tmp_path):
    _dir(tmp_path, GOOD)
    (tmp_path / "other.toml").write_text(GOOD.replace('"tiny"', '"other"'))
    exps = catalogue.load_experiments([tmp_path])
    with pytest.raises(ConfigError, match="say which: other:a, tiny:a"):
        selection.select(exps, None, "a", [])
    assert selection.select(exps, None, "other:a", [])[0].experiment == "other"


@pytest.mark.parametrize("edit, message", [
    (("paper = 1.0", "paper = 1.0\nprotocol = \"medain\""), "protocol must be one of median, best, mean, single"),
    (("name = \"tiny\"", "name = \"tiny\"\nprotocol = \"top\""), "protocol must be one of"),
    (("paper = 1.0", "paper = 1.0\npaper_mean = \"6.6\""), "key 'paper_mean' must be"),
])
def test_bad_protocol_fields_raise_one_line(tmp_path, edit, message):
    with pytest.raises(ConfigError) as e:
        catalogue.load_experiments([_dir(tmp_path, GOOD.replace(*edit))])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_preset_sets_keys_to_null_and_checks_them(tmp_path):
    d = _dir(tmp_path, GOOD, presets='[small]\nnull = ["warmup_lr", "fail_chance_fraction"]\n')
    assert catalogue.load_presets([d])["small"].config == {"warmup_lr": None, "fail_chance_fraction": None}
    for table, message in (('null = ["fail_chanse_fraction"]', "did you mean 'fail_chance_fraction'"),
                           ('fail_chance_fraction = 0.5\nnull = ["fail_chance_fraction"]', "both set and in null")):
        with pytest.raises(ConfigError, match=message):
            catalogue.load_presets([_dir(tmp_path, GOOD, presets=f"[small]\n{table}\n")])


def test_a_key_a_variant_sets_itself_wins_over_the_preset(tmp_path):
    """Issue 9, item 11: the row's own lr is what the row is about; the preset's lr applies to the others."""
    text = GOOD + '[[variant]]\nname = "fast"\nshortcut = "identity"\nlr = 0.3\n'
    d = _dir(tmp_path, text, presets='[small]\nlr = 0.05\nsteps = 2\n[small.arch_map]\nresnet8 = "resnet14"\n')
    e = catalogue.load_experiments([d])["tiny"]
    runs = {r.variant: r for r in expansion.expand({"tiny": e}, e.variants, catalogue.load_presets([d])["small"])}
    assert runs["fast"].config["lr"] == 0.3 and runs["a"].config["lr"] == 0.05
    assert runs["fast"].config["arch"] == "resnet14"  # the preset's arch_map still applies to the row's net
    assert runs["fast"].hash != runs["a"].hash
    again = expansion.expand({"tiny": e}, e.variants, catalogue.load_presets([d])["small"], settings={"lr": 0.01})
    assert {r.config["lr"] for r in again} == {0.01}  # and the command line wins over both


def test_a_preset_subset_larger_than_an_overridden_dataset_is_the_whole_split(exps, presets):
    """Issue 9, item 6: the quick preset's eval_subset = 2000 with --dataset synthetic (256 test images)."""
    im = exps["identity_mappings"]
    notes = []
    [r] = expansion.expand(exps, [im.variant("original")], presets["quick"], overrides={"dataset": "synthetic"},
                    notes=notes)
    assert r.config["eval_subset"] is None  # the whole split: the same images, so the same numbers
    assert notes == ["eval_subset=2000 is more than the 256 test images of synthetic: the whole split is used "
                     "(eval_subset=null)"]
    [same] = expansion.expand(exps, [im.variant("original")], presets["quick"], overrides={"dataset": "synthetic"},
                       settings={"eval_subset": None})
    assert same.hash == r.hash
    [fm] = expansion.expand(exps, [im.variant("original")], presets["quick"])
    assert fm.config["eval_subset"] == 2000  # 10000 test images: the preset's subset as written


def test_the_quick_schedule_follows_steps(exps, presets):
    """The quick preset's drops are the papers' 32k and 48k of 64k as fractions: --set steps moves them."""
    im = exps["identity_mappings"]
    rows = [im.variant("original")]
    default, = expansion.expand(exps, rows, presets["quick"], seeds=1)
    assert default.config["steps"] == 500 and default.config["milestones"] == [250, 375]
    short, = expansion.expand(exps, rows, presets["quick"], seeds=1, settings={"steps": 120})
    assert short.config["milestones"] == [60, 90]
    flat, = expansion.expand(exps, rows, presets["quick"], seeds=1, settings={"steps": 120, "milestones": []})
    assert flat.config["milestones"] == []  # milestones given on the command line win
    with pytest.raises(ConfigError, match="milestone"):  # absolute ones beyond steps are still refused
        expansion.expand(exps, rows, presets["quick"], seeds=1, settings={"steps": 120, "milestones": [250]})
    paper, = expansion.expand(exps, rows, presets["paper"], seeds=1)
    assert paper.config["milestones"] == [32000, 48000]  # the paper preset keeps the experiment's own
    seed = exps["seed_cifar2"]  # an experiment's own [presets.quick] milestones win over the preset's fractions
    assert all(r.config["milestones"] == [] for r in expansion.expand(exps, seed.variants, presets["quick"], seeds=1))


def test_milestones_at_are_checked(tmp_path):
    for table, message in (("milestones_at = [0.5, 1.5]", "between 0 and 1"),
                           ("milestones_at = [0.5]\nmilestones = [3]", "not both")):
        with pytest.raises(ConfigError, match=message):
            catalogue.load_presets([_dir(tmp_path, GOOD, presets=f"[small]\n{table}\n")])
    d = _dir(tmp_path, GOOD, presets="[small]\nsteps = 40\nmilestones_at = [0.25]\n")
    e = catalogue.load_experiments([d])["tiny"]
    runs = expansion.expand({"tiny": e}, e.variants, catalogue.load_presets([d])["small"])
    assert {r.config["milestones"][0] for r in runs} == {10}
