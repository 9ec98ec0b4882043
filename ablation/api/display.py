"""How a study shows in Jupyter: its tables with the paper's numbers beside ours, its findings with their verdicts marked."""

from __future__ import annotations

from html import escape

# verdict -> (mark, colour); the words are those of ablation.reporting.stats.VERDICTS
MARKS = {"holds": ("✓", "#1a7f37"), "contradicted": ("✗", "#cf222e"), "not significant": ("~", "#9a6700")}
STYLE = ("<style>.ablation td,.ablation th{text-align:left;padding:2px 8px}"
         ".ablation th{border-bottom:1px solid #999}.ablation .n{text-align:right}</style>")


def verdict_html(verdict: str) -> str:
    mark, colour = MARKS.get(verdict, ("·", "#57606a"))
    return f'<b style="color:{colour}">{mark} {escape(verdict.upper())}</b>'


def _table(head: list[str], lines: list[list[str]]) -> str:
    """An HTML table of cells already escaped."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in line) + "</tr>" for line in lines)
    return f'<table class="ablation"><tr>{th}</tr>{body}</table>'


def experiment_html(results, name: str) -> str:
    """One experiment: each row run, its statistic beside the paper's number, the fail marks, then its claims tested."""
    from ..core.text import paper_cell
    from ..reporting import paper_tables

    meta = results.manifest["experiments"][name]
    stats = results.statistics()
    rows = stats[(stats["experiment"] == name) & ((stats["seeds"] > 0) | (stats["errors"] > 0))]  # as the report's
    lines = [[escape(str(d["label"])), escape(paper_tables.ours_cell(d)), escape(paper_tables.ci_cell(d)),
              escape(paper_cell(d["paper"], d))] for d in rows.to_dict("records")]
    parts = [f"<h4>{escape(meta.get('title') or name)}</h4>",
             _table(["row", "ours (test error %)", "mean ± std [95% CI]", "paper"], lines)]
    fails = paper_tables.fail_marks(meta, stats) if not meta.get("axis") else []
    if fails:
        parts.append("<ul>" + "".join(f"<li>fail marks: {escape(f)}</li>" for f in fails) + "</ul>")
    claims = results.claims().get(name, [])
    if claims:
        parts.append(_table(["verdict", "claim", "detail"],
                            [[verdict_html(c["verdict"]), escape(c["says"]), escape(c["detail"])] for c in claims]))
    return STYLE + "".join(parts)


def results_html(results) -> str:
    """A results folder: what it is, how many runs finished, then every experiment."""
    manifest, runs = results.manifest, results.tables()[1]
    counts = runs["status"].value_counts().to_dict()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = (f"<p><b>{escape(type(results).__name__)}</b> <code>{escape(str(results.path))}</code>: preset "
            f"<code>{escape(str(manifest.get('preset')))}</code>, {len(runs)} runs ({escape(status)})</p>")
    return head + "".join(experiment_html(results, n) for n in manifest["experiments"])


def plan_html(study, notes: list[str]) -> str:
    """A study not yet run: its rows, seeds and runs, and where they go."""
    runs = study.plan.runs
    by_row = {}
    for r in runs:
        by_row.setdefault((r.experiment, r.variant), []).append(r)
    lines = [[escape(e), escape(v), str(len(rs)), escape(rs[0].config.get("arch", ""))] for (e, v), rs in by_row.items()]
    out = (f"<p><b>Study</b> <code>{escape(str(study.path))}</code>: preset <code>{escape(study.plan.preset.name)}"
           f"</code>, {len(by_row)} rows, {len(runs)} runs, nothing trained yet (<code>.dry_run()</code> for the cost, "
           f"<code>.run()</code> to train)</p>")
    out += STYLE + _table(["experiment", "row", "seeds", "arch"], lines)
    if notes:
        out += "<ul>" + "".join(f"<li>note: {escape(n)}</li>" for n in notes) + "</ul>"
    return out
