"""The README is what a new user runs: its commands and code must stay true."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_its_title_then_the_setup_and_test_commands_that_ci_runs():
    assert README.startswith("# ablation\n")
    first_heading = README.index("\n## ")
    assert README.index("```sh\n") > first_heading, "a paragraph saying what this is comes before any command"
    commands = [line for line in _blocks("sh")[0].splitlines() if line.strip()]
    assert len(commands) == 2 and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"{command!r} is in the README but not in .ci/run"


def test_ci_runs_the_readme_commands_in_a_fresh_virtual_environment():
    ci = (ROOT / ".ci" / "run").read_text()
    venv = ci.index("python3 -m venv")
    assert "--system-site-packages" not in ci
    assert venv < ci.index("source \"$venv/bin/activate\"") < ci.index("python -m pytest")


def test_readme_the_main_command_follows_the_setup():
    assert _blocks("sh")[1].strip() == "python -m ablation.run --variants all"


def test_readme_holds_no_unreplaced_placeholder():
    # a line that is one upper-case identifier (OVERHEAD_TABLE) or a template marker was meant to be filled
    lines = [line.strip() for line in README.splitlines()]
    assert not [line for line in lines if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", line)]
    assert not re.search(r"\{\{.*?\}\}|\bTODO\b|\bTBD\b|\bXXX\b", README)


def test_readme_python_examples_run():
    for block in _blocks("python"):
        if "register_shortcut(\"learned-scale\"" in block:
            continue  # the plugin example is exercised through the command line below
        exec(compile(block, "README.md", "exec"), {})


def test_readme_plugin_example_registers(tmp_path):
    import subprocess
    import sys

    plugin = next(b for b in _blocks("python") if "learned-scale" in b)
    (tmp_path / "my_shortcuts.py").write_text(plugin)
    line = next(b for b in _blocks("sh") if "--plugin my_shortcuts.py" in b).strip()
    done = subprocess.run([sys.executable, *line.split()[1:]], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "shortcut learned-scale" in done.stdout


def test_the_settings_the_readme_names_are_the_files():
    """Outside its findings blocks the README names settings, not results: each is what the files say."""
    from ablation.reporting.stats import ALPHA
    from ablation.reporting.signal_ladder import LADDER
    from ablation.study import catalogue

    text = " ".join(README.split())
    exps = catalogue.load_experiments()

    def listed(values):
        return f"{', '.join(map(str, values[:-1]))} and {values[-1]}"

    assert f"depths {listed(exps['depth_ladder'].axis['values'])}" in text
    assert f"at {listed(exps['length_ladder'].axis['values'])} iterations" in text
    assert f"significant at {ALPHA} after Holm" in text
    assert f"train for {exps['identity_mappings'].base['steps'] // 1000}k iterations" in text
    assert f"at depths up to {max(int(a.removeprefix('resnet')) for a, _, _ in LADDER)}" in text


def test_every_link_of_the_readme_resolves():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [l.split("#")[0] for l in links if not re.match(r"[a-z]+://", l) and not l.startswith("#")]
    assert local and not [l for l in local if not (ROOT / l).exists()]
