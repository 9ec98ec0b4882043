"""The figures' shared rules on made-up results: every seed a point with its failure marked, colours by family
of shortcut, no figure wider than about 2000 px, and signal curves that say why they vanish (no training)."""

import colorsys
import json
import math

import pytest

from ablation.core.layout import ResultsDir
from ablation.reporting import figure_style, ladder_plots, mechanism_plots, plots
from ablation.reporting import stats as st
from ablation.reporting.tables import load_tables
from ablation.study.expansion import expand
from ablation.study.invocation import log_invocation
from ablation.study.manifest import manifest

MAX_PX = 2000

# He 2016 Table 1's rows by their shortcut, in the order of identity_mappings.toml
TABLE_1 = {"original": "identity", "scale-0-1": "scale", "scale-0.5-1": "scale", "scale-0.5-0.5": "scale",
           "exclusive-gate-b0": "exclusive-gate", "exclusive-gate-b-6": "exclusive-gate",
           "exclusive-gate-b-7": "exclusive-gate", "shortcut-gate-b0": "shortcut-gate",
           "shortcut-gate-b-6": "shortcut-gate", "conv1x1": "projection-all", "dropout-0.5": "dropout",
           "dropout-0.5-mask": "dropout"}


def _distance(a, b) -> float:
    return math.dist(a, b)


def test_rows_of_one_family_are_shades_apart_and_families_differ_in_hue():
    c = figure_style.row_colors(TABLE_1)
    assert _distance(c["dropout-0.5"], c["dropout-0.5-mask"]) > 0.25
    gated = [c[r] for r in TABLE_1 if "gate" in r]
    assert min(_distance(a, b) for i, a in enumerate(gated) for b in gated[i + 1:]) > 0.1
    # one hue per family (identity grey), far from every other family's
    hls = {f: [colorsys.rgb_to_hls(*c[r]) for r in rows] for f, rows in figure_style.families(TABLE_1).items()}
    assert all(s < 0.05 for _, _, s in hls["identity"])
    hue = {f: sum(h for h, _, _ in v) / len(v) for f, v in hls.items() if f != "identity"}
    assert set(hue) == {"constant scaling", "gating", "1x1 convolution", "dropout"}
    for f in hue:
        for g in hue:
            if f < g:
                gap = abs(hue[f] - hue[g])
                assert min(gap, 1 - gap) > 0.08, (f, g)
    assert figure_style.row_colors(TABLE_1) == c  # the same rows, the same colours in every figure


def test_rows_that_share_one_family_get_hues_of_their_own_and_unknown_shortcuts_a_family_each():
    orders = figure_style.row_colors({o: "identity" for o in ("original", "bn-after-add", "full-preact")})
    assert len(set(orders.values())) == 3
    modern = figure_style.row_colors({"identity": "identity", "rezero-bn": "rezero", "rezero-nobn": "rezero",
                               "fixup": "fixup", "nf": "nf"})
    assert figure_style.family_of("rezero") == "rezero" and figure_style.family_of(None) == "other"
    assert len(set(modern.values())) == 5
    assert modern["rezero-bn"] != modern["rezero-nobn"]


# final test error per row and seed of a made-up depth ladder; None: a run that did not finish
SEEDS = {"original": [15.0, 16.0, 26.0], "scale-0.5-0.5": [18.0, 19.0, 20.0], "dropout-0.5": [90.0, 90.0, 89.0],
         "exclusive-gate-b-6": [30.0, 33.0, 90.0]}
STATUS = {("dropout-0.5", 0): "fail", ("exclusive-gate-b-6", 2): "diverged", ("dropout-0.5", 2): "test-not-finite"}
DEPTHS = (20, 32, 56, 110)


def _ladder(tmp_path, exps, presets, rows, seeds, gates=False, own_iterations=False):
    """A made-up results folder of the depth ladder: ``rows`` at every depth, ``seeds`` each, per-unit gradient
    norms and (``gates``) gate means in the history, as a finished study leaves them; ``own_iterations``: each
    depth records at iterations of its own, as the rungs of a length ladder do."""
    lad = exps["depth_ladder"]
    variants = [lad.variant(f"{r}@{d}") for d in DEPTHS for r in rows]
    runs = expand(exps, variants, presets["quick"], seeds=seeds)
    out = tmp_path / "ladder"
    res = ResultsDir(out)
    res.write_manifest(manifest(None, presets["quick"], exps, variants, runs))
    for r in runs:
        row, depth = r.variant.split("@")
        test = SEEDS.get(row, [20.0, 21.0, 22.0])[r.seed]
        status = STATUS.get((row, r.seed), "ok")
        units = 3 * (int(depth) - 2) // 6
        d = out / "runs" / r.hash
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(r.config))
        every = 10 * (DEPTHS.index(int(depth)) + 1 if own_iterations else 1)
        hist = [{"iteration": i * every, "epoch": i / 10, "lr": 0.1, "train_loss": 1.0, "train_error": test,
                 "test_loss": 1.0, "test_error": test, "wall_time": float(i),
                 "grad_norms": [0.1 * (u + 1) for u in range(units)],
                 **({"gate_mean": {"0": 0.01, "1": 0.02, "2": 0.03}} if gates and "gate" in row else {})}
                for i in range(2)]
        (d / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
        (d / "summary.json").write_text(json.dumps({
            "status": status, "outcome_rule": 2, "reason": None if status == "ok" else status,
            "final_test_error": test, "best_test_error": test, "final_train_error": test - 2, "params": 1,
            "flops": 1, "iterations": 20, "epochs": 1.0, "time_s": 1.0, "images_per_s": 1.0, "device": "cpu"}))
    log_invocation(res, "python -m ablation.run --experiment depth_ladder", 1.0,
                   {"trained": len(runs), "skipped": 0, "errors": 0, "interrupted": False, "jobs": 1}, 1)
    return out


def _seed_points(fig) -> list[str]:
    """The status of every seed point :func:`ablation.reporting.figure_style.draw_seeds` drew on the figure."""
    return [c.get_label().split(":", 1)[1] for ax in fig.axes for c in ax.collections
            if c.get_label().startswith("_seed:")]


def _legend_texts(fig) -> str:
    return " | ".join(t.get_text() for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg
                      for t in leg.get_texts())


@pytest.fixture
def small_ladder(tmp_path, exps, presets):
    return _ladder(tmp_path, exps, presets, list(SEEDS), 3)


def test_the_ladder_figures_draw_every_seed_and_mark_each_kind_of_failure(small_ladder):
    man, runs, _ = load_tables(small_ladder)
    stats = st.row_stats(man, runs)
    with figure_style.capture() as figs:
        ladder_plots.plot_rows(man, runs, stats, "depth_ladder", small_ladder / "plots")
        plots.plot_bars(man, runs, stats, "depth_ladder", small_ladder / "plots")
    for name in ("errors_vs_depth_depth_ladder", "depth_ladder_errors"):
        points = _seed_points(figs[name])
        own = len(runs)  # every run of every row at every depth, once
        # the errors_vs figure shows identity in every family's panel: its seeds once per panel
        panels = 3 if name.startswith("errors_vs") else 1
        assert len(points) == own + (panels - 1) * 3 * len(DEPTHS), name
        for status in ("fail", "diverged", "test-not-finite"):
            assert status in points, (name, status)
        legend = _legend_texts(figs[name])
        assert "stopped at chance" in legend and "diverged" in legend and "final test loss is not finite" in legend
    # the statistic says what it is
    ylabels = " ".join(ax.get_ylabel() for ax in figs["errors_vs_depth_depth_ladder"].axes)
    assert "median of seeds" in ylabels and "each seed" in ylabels
    # the depth axis is proportional: log, a tick at every depth run
    ax = figs["errors_vs_depth_depth_ladder"].axes[0]
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == list(DEPTHS)


def test_a_row_without_failures_has_no_failure_marks(small_ladder):
    man, runs, _ = load_tables(small_ladder)
    runs = runs[~runs["variant"].str.startswith(("dropout", "exclusive"))]
    with figure_style.capture() as figs:
        plots.plot_bars(man, runs, st.row_stats(man, runs), "depth_ladder", small_ladder / "plots")
    assert set(_seed_points(figs["depth_ladder_errors"])) == {"ok"}
    assert "diverged" not in _legend_texts(figs["depth_ladder_errors"])


def test_the_papers_fail_line_rings_the_seeds_above_it_only_on_its_own_dataset(small_ladder):
    man, runs, _ = load_tables(small_ladder)
    meta = man["experiments"]["depth_ladder"]
    assert figure_style.fail_line(meta, runs) is None  # fashion-mnist: the paper's 20% is about CIFAR-10
    man["experiments"]["depth_ladder"] = {**meta, "dataset": runs["dataset"].iloc[0]}
    with figure_style.capture() as figs:
        plots.plot_bars(man, runs, st.row_stats(man, runs), "depth_ladder", small_ladder / "plots")
    above = sum(1 for ax in figs["depth_ladder_errors"].axes for c in ax.collections
                if c.get_label() == "_above the fail line")
    assert above == int((runs["final_test_error"] > meta["fail_above"]).sum())
    assert "above the paper's \"fail\" line (20%)" in _legend_texts(figs["depth_ladder_errors"])


def test_no_figure_of_a_48_row_ladder_is_wider_than_2000_px(tmp_path, exps, presets):
    from PIL import Image

    out = _ladder(tmp_path, exps, presets, list(TABLE_1), 1, gates=True)
    man, runs, history = load_tables(out)
    stats = st.row_stats(man, runs)
    assert stats["experiment"].eq("depth_ladder").sum() == 48
    with figure_style.capture() as figs:  # as save_figure writes them, PNG only
        plots.plot_bars(man, runs, stats, "depth_ladder", out)
        mechanism_plots.plot_grad_flow(man, runs, history, "depth_ladder", out)
        mechanism_plots.plot_gates(man, runs, history, "depth_ladder", out)
        ladder_plots.plot_rows(man, runs, stats, "depth_ladder", out)
    assert set(figs) == {"depth_ladder_errors", "grad_flow_depth_ladder", "gates_depth_ladder",
                         "errors_vs_depth_depth_ladder"}
    for name, fig in figs.items():
        png = tmp_path / f"{name}.png"
        fig.savefig(png, dpi=figure_style.DPI, bbox_inches="tight")
        assert Image.open(png).size[0] <= MAX_PX, name


def test_each_rung_of_the_gradient_flow_shows_its_own_iterations_and_no_empty_panel(tmp_path, exps, presets):
    out = _ladder(tmp_path, exps, presets, ["original", "conv1x1"], 1, own_iterations=True)
    man, runs, history = load_tables(out)
    with figure_style.capture() as figs:
        mechanism_plots.plot_grad_flow(man, runs, history, "depth_ladder", out)
    shown = [ax for ax in figs["grad_flow_depth_ladder"].axes if ax.get_visible()]
    assert len(shown) == 2 * len(DEPTHS)  # two recorded iterations per rung, not the eight of all rungs
    assert all(ax.lines for ax in shown)
    assert {ax.get_title().split("iteration ")[1].split(" ")[0] for ax in shown} == {"0", "10", "20", "30", "40"}


@pytest.mark.parametrize("values, says", [
    ([1.0, 0.5, 0.25], None),
    ([0.0, 0.0, 0.0], "0 at every unit (exactly 0)"),
    ([1e-3, 1e-40, 0.0, 0.0], "0 from unit 3 on (float32 underflow, after 1e-40)"),
    ([8000.0, 16000.0, 0.0, 0.0], "0 from unit 3 on (exactly 0)"),
    ([1e30, 1e38, float("inf"), float("inf")], "inf from unit 3 on (float32 overflow"),
    ([1.0, float("nan"), 1.0, 1.0], "NaN at unit 2"),
])
def test_a_signal_curve_that_leaves_the_log_axis_says_why(values, says):
    from ablation.reporting.signal_plots import gone

    got = gone(range(1, len(values) + 1), values)
    assert got == says if says is None else says in got


def test_the_signal_figures_note_vanishing_curves_and_tick_every_depth(tmp_path):
    from ablation.reporting import signal_ladder as SL
    from ablation.reporting.signal_plots import plot_ladder
    from ablation.signal_ladder import experiment_rows

    _, rows = experiment_rows()
    rows = [r for r in rows if r[0] in ("original", "scale-0-1")]  # lam_s = 0 with a zero branch: 0 everywhere
    table = SL.run_ladder(tmp_path, rows, ["resnet20", "resnet32"], batch=4, image=(3, 8, 8), quiet=True)
    with figure_style.capture() as figs:
        plot_ladder(table, tmp_path)
    depth = figs["signal_ladder_depth"]
    assert all(list(ax.get_xticks()) == [9, 15] for ax in depth.axes if ax.get_xscale() == "log")
    from matplotlib.legend import Legend

    notes = " ".join(a.get_title().get_text() for ax in figs["signal_resnet20"].axes for a in ax.get_children()
                     if isinstance(a, Legend))
    assert "not on the log axis:" in notes and "scale-0-1: 0 at every unit (exactly 0)" in notes


def test_a_title_wider_than_its_figure_is_wrapped_not_left_to_widen_the_image(tmp_path):
    from PIL import Image

    plt, _ = figure_style.setup_figures()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    fig.suptitle("a title far longer than the panels under it " * 12)
    fig.tight_layout()
    figure_style.save_figure(fig, tmp_path, "wide")
    assert Image.open(tmp_path / "wide.png").size[0] <= 8 * figure_style.DPI + 40  # the panels, with their margins


def test_the_rotated_labels_of_a_ladders_bars_do_not_run_into_each_other():
    """The shipped length ladder has 18 rows a panel, the designs' labels the longest: each rotated label's lines,
    stacked across the slope, fit in the distance between two bars measured across the same slope."""
    from ablation.reporting.headlines import folder

    where = folder("length-quick-intel-xeon")
    man, runs, _ = load_tables(where)
    stats = st.row_stats(man, runs)
    with figure_style.capture() as figs:
        plots.plot_bars(man, runs, stats, "length_ladder", where / "plots")
    fig = figs["length_ladder_errors"]
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        if len(labels) < 2:
            continue
        x0, x1 = (ax.transData.transform((x, 0))[0] for x in ax.get_xticks()[:2])
        across = abs(x1 - x0) * math.sin(math.radians(labels[0].get_rotation()))
        line = labels[0].get_fontsize() * fig.dpi / 72 * 1.2  # matplotlib's line spacing
        widest = max(t.get_text().count("\n") + 1 for t in labels)
        assert widest * line <= across, (widest, line, across)
