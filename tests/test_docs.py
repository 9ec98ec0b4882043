"""The documentation site: its reference pages list what the code reads and writes, its examples run, it builds
with ``mkdocs build --strict``, and a browser shows its pages, figures and API reference.

The build and the browser test need the docs tools (the ``dev`` extra installs them) and, for the browser,
Chromium at /usr/bin/chromium (Debian's package; .ci/run installs it); each skips, saying why, where they are
absent.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

import ablation
from ablation.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/bin/chromium")
# Chromium as root in a container, on a closed network: no sandbox, no GPU, nothing fetched on its own
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def _blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), flags=re.S)


def _help_keys() -> set[str]:
    done = subprocess.run([sys.executable, "-m", "ablation.train", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"^  (\w+)=", done.stdout, flags=re.M))


# --- the reference pages against the code ------------------------------------------------------------------


def test_the_config_key_reference_lists_every_key_that_train_help_knows():
    known = _help_keys()
    listed = set(re.findall(r"^\| `(\w+)` \|", "\n".join(hooks.config_keys()), flags=re.M))
    assert len(known) > 30 and listed == known
    assert "<!-- docs: config-keys -->\n" in (DOCS / "experiments.md").read_text()


@pytest.mark.parametrize("page", ["experiments.md", "results.md"])
def test_every_key_and_column_the_code_knows_has_its_meaning_on_the_page(page):
    text, problems = hooks.render((DOCS / page).read_text(), page)
    assert problems == []
    assert "<!-- docs:" not in text


def test_a_key_without_a_meaning_or_one_the_code_does_not_read_fails():
    page = (DOCS / "experiments.md").read_text()
    lost = page.replace("- `paper_metric`: Required.", "- `paper_metrics`: Required.")
    _, problems = hooks.render(lost, "experiments.md")
    assert any("`paper_metric` is read by the code but has no meaning" in p for p in problems)
    assert any("`paper_metrics` is on the page but the code does not read it" in p for p in problems)
    page = (DOCS / "results.md").read_text()
    _, problems = hooks.render(page.replace("- `max_residual`: ", "- `residual`: "), "results.md")
    assert any("`max_residual` is written by the code but has no meaning" in p for p in problems)


def _minimal(kind: str) -> dict:
    return {"experiment": {"name": "x", "title": "t", "paper_metric": "m", "variant": [{"name": "a"}]},
            "ladder": {"name": "l", "title": "t", "rows_of": "x", "key": "steps", "values": [500]}}[kind]


def _read(kind: str, table: dict) -> None:
    from ablation.study import experiments as ex
    from ablation.study import ladder

    if kind == "experiment":
        ex.experiment_from(table, "x.toml")
    else:
        ex.experiment_from(ladder.expand(table, {"x": _minimal("experiment")}, "l.toml")[0], "l.toml",
                           ladder_rows=True)


@pytest.mark.parametrize("kind, section", [("experiment", "experiment"), ("ladder", "ladder"),
                                           ("variant", "variant")])
def test_the_keys_the_page_calls_required_are_those_the_reader_requires(kind, section):
    body = re.search(rf"<!-- docs: keys {section} -->\n(.*?)<!-- /docs -->", (DOCS / "experiments.md").read_text(),
                     flags=re.S)[1]
    required = {k for k, text in hooks.meanings(body).items() if text.startswith("Required.")}
    if kind == "variant":  # a row of the minimal experiment is its name alone
        assert required == set(_minimal("experiment")["variant"][0]) == {"name"}
        with pytest.raises(ConfigError, match="missing key 'name'"):
            _read("experiment", {**_minimal("experiment"), "variant": [{"label": "a"}]})
        return
    assert required == set(_minimal(kind))
    _read(kind, _minimal(kind))  # the required keys alone are a whole file
    for key in required:
        table = {k: v for k, v in _minimal(kind).items() if k != key}
        with pytest.raises(ConfigError, match=f"missing key '{key}'"):
            _read(kind, table)


def test_the_example_experiment_and_ladder_of_the_page_plan_their_runs(tmp_path):
    experiment, ladder = _blocks(DOCS / "experiments.md", "toml")[:2]
    folder = tmp_path / "experiments"  # a user's folder, beside the shipped experiments and presets
    folder.mkdir()
    (folder / "my_options.toml").write_text(experiment)
    # the page's ladder under a name of its own: the shipped depth_ladder holds that name
    (folder / "my_ladder.toml").write_text(ladder.replace('name = "depth_ladder"', 'name = "my_ladder"'))
    study = ablation.Study(experiment="my_options", experiments=folder, out=tmp_path / "out")
    assert {r.variant for r in study.plan.runs} == {"option-a", "option-b", "option-c"}
    assert {r.config["steps"] for r in study.plan.runs} == {300}  # its [presets.quick] over the preset
    rungs = ablation.Study(experiment="my_ladder", experiments=folder, out=tmp_path / "rungs")
    assert {r.config["arch"] for r in rungs.plan.runs} == {"resnet20", "resnet32", "resnet56", "resnet110"}


def _examples(training: bool) -> list[tuple[Path, str]]:
    """The python blocks of the pages that run as they are (not a plugin file), those that train a study or not."""
    blocks = [(page, b) for page in sorted(DOCS.rglob("*.md")) for b in _blocks(page, "python")]
    return [(page, b) for page, b in blocks if "register_shortcut(" not in b and not b.startswith("--8<--")
            and ("Study(" in b) == training]


@pytest.mark.parametrize("training", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_python_examples_of_the_pages_run(training, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # they write results/ where they run
    examples = _examples(training)
    assert examples
    for page, block in examples:
        exec(compile(block, str(page), "exec"), {})


def test_the_plugin_example_registers_through_the_command_line(tmp_path):
    page = DOCS / "shortcuts.md"
    plugin = next(b for b in _blocks(page, "python") if "register_shortcut(" in b)
    (tmp_path / "my_shortcuts.py").write_text(plugin)
    line = next(b for b in _blocks(page, "sh") if "--plugin my_shortcuts.py" in b).strip()
    done = subprocess.run([sys.executable, *line.split()[1:]], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "learned-scale" in done.stdout


def test_every_export_has_a_docstring_and_one_without_is_named():
    assert hooks.undocumented() == []

    def bare(x):
        pass

    class Documented:
        """A class."""

        def method(self):
            pass

        @property
        def value(self):
            """A property."""

    fake = types.SimpleNamespace(__all__=["bare", "Documented", "ConfigError"], bare=bare, Documented=Documented,
                                 ConfigError=ConfigError)
    assert hooks.undocumented(fake) == ["ablation.bare", "ablation.Documented.method"]


CITATION = r"(?:He|al\.) (?:19|20)\d\d|(?:Tables?|eq\.|Fig\.|Sec\.) \d+(?:(?: to | and |-)\d+)?"


def test_the_findings_pages_show_every_figure_of_their_folder_and_no_number_outside_the_blocks():
    for page in sorted((DOCS / "findings").glob("*.md")):
        text = page.read_text()
        folders = set(re.findall(r"<!-- docs: figures (\S+) -->", text))
        assert page.name == "index.md" or folders == {page.stem}, page
        outside = re.sub(r"<!-- findings: .*?<!-- /findings -->", "", text, flags=re.S)
        outside = re.sub(r"```.*?```|<!--.*?-->", "", outside, flags=re.S)  # commands, markers
        outside = re.sub(r"`[^`]*`|\]\([^)]*\)|^#.*$", "", outside, flags=re.M)  # code, link targets, headings
        outside = re.sub(CITATION, "", outside)  # a paper's year, table, figure or equation is no number of ours
        numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?%?(?![\w-])", outside)
        assert not numbers, f"{page.name}: numbers outside the findings blocks: {numbers}"


# --- the site, built ---------------------------------------------------------------------------------------


def _mkdocs(config: Path, site: Path, cwd: Path = ROOT):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "--site-dir",
                           str(site)], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs tools are not installed (pip install -e '.[docs]'; the dev "
                                         "extra brings them)")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e '.[docs]')")
    site = tmp_path_factory.mktemp("site")
    done = _mkdocs(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def test_the_site_builds_strict_with_every_page_and_figure(site):
    config = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r"(\S+)\.md$", config, flags=re.M)
    assert len(pages) >= 15 and all((site / f"{p.split()[-1]}.html").is_file() for p in pages)
    shipped = ROOT / "results" / "reference"
    figures = {p.relative_to(shipped) for p in shipped.glob("*/**/*.png")}
    assert figures and all((site / "figures" / f).is_file() for f in figures)
    experiments = (site / "experiments.html").read_text()
    assert all(f"<code>{key}</code>" in experiments for key in _help_keys())
    api = (site / "api.html").read_text()
    assert all(f"ablation.{name}" in api for name in ablation.__all__)
    assert ":func:" not in api and ":class:" not in api


def test_a_broken_link_or_a_missing_figure_fails_the_build(site, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# t\n\n[a page](no-such-page.md)\n\n"
                                   "![a figure](figures/quick-amd-epyc/plots/no-such-figure.png)\n")
    config = (ROOT / "mkdocs.yml").read_text()
    config = re.sub(r"^nav:.*", "nav:\n  - index.md\n", config, flags=re.M | re.S)
    config = re.sub(r"  - mkdocstrings:.*?(?=^\S)", "", config, flags=re.M | re.S)  # no API page here
    config = config.replace("  - docs/hooks.py", f"  - {DOCS / 'hooks.py'}")
    config = config.replace("extra_css:\n  - stylesheets/extra.css\n", "")
    (tmp_path / "mkdocs.yml").write_text(config)
    done = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path)
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr and "no-such-figure.png" in done.stderr


# --- the site, in a browser --------------------------------------------------------------------------------


@pytest.fixture
def browser_page(site):
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra "
                                                                   "brings it)")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen = {"failed": [], "elsewhere": [], "errors": []}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("response", lambda r: r.status >= 400 and seen["failed"].append(f"{r.status} {r.url}"))
        page.on("request", lambda r: not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                and seen["elsewhere"].append(r.url))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        yield page, f"http://127.0.0.1:{server.server_port}", seen
        browser.close()
    server.shutdown()


def _images(page) -> list[dict]:
    page.wait_for_load_state("load")
    return page.eval_on_selector_all(
        "article img", "imgs => imgs.map(i => ({src: i.currentSrc, complete: i.complete, width: i.naturalWidth}))")


def test_the_site_in_a_browser_shows_its_home_findings_and_api(browser_page):
    page, base, seen = browser_page

    page.goto(f"{base}/index.html")
    assert page.title().startswith("ablation")
    assert page.locator("article h1").inner_text().rstrip("¶") == "ablation"
    assert page.get_by_role("link", name="API reference").first.is_visible()
    home = _images(page)
    assert len(home) == 2 and all(i["complete"] and i["width"] > 0 for i in home), home

    page.goto(f"{base}/findings/quick-amd-epyc.html")
    shown = _images(page)
    assert shown and all(i["complete"] and i["width"] > 0 for i in shown), [i for i in shown if not i["width"]]
    plots = {p.name for p in (ROOT / "results" / "reference" / "quick-amd-epyc" / "plots").glob("*.png")}
    assert plots <= {i["src"].rsplit("/", 1)[-1] for i in shown}
    assert "HOLDS" in page.locator("article").inner_text()

    page.goto(f"{base}/api.html")
    text = page.locator("article").inner_text()
    assert all(f"ablation.{name}" in text for name in ablation.__all__)
    first = re.sub(r":\w+:`~?([^`]+)`", r"\1", inspect.getdoc(ablation.Study).splitlines()[0]).replace("``", "")
    assert first in text

    # typed once the page's scripts are idle: a value set before the search component listens is not searched
    page.wait_for_load_state("networkidle")
    box = page.locator("input[data-md-component=search-query]")
    box.click()
    box.press_sequentially("prediction interval", delay=20)
    page.locator(".md-search-result__item").first.wait_for(timeout=60_000)  # the index builds on first use
    assert "statistics" in page.locator(".md-search-result").inner_text().lower()

    assert seen == {"failed": [], "elsewhere": [], "errors": []}
