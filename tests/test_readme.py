"""The README is what a new user runs: its commands and code must stay true."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_setup_and_test_commands_that_ci_runs():
    assert README.startswith("```sh\n")
    commands = [line for line in _blocks("sh")[0].splitlines() if line.strip()]
    assert len(commands) == 2 and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"{command!r} is in the README but not in .ci/run"


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
