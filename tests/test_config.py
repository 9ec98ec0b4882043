"""The one config schema: help for every key, one set of runtime keys for the hash and for resuming."""

import subprocess
import sys

import pytest

from ablation.training import config as C
from ablation.study import expansion
from ablation.core.errors import ConfigError
from ablation.core.layout import RunDir
from ablation.training.checkpoint import check_same_run


def test_every_key_has_a_help_line_shown_by_train_help():
    done = subprocess.run([sys.executable, "-m", "ablation.train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for name, key in C.SCHEMA.items():
        assert key.help.strip(), name
        assert f"  {name}=" in done.stdout and key.help in done.stdout


@pytest.mark.parametrize("key, value", [("compile", True), ("eval_batch_size", 17), ("lr", 0.01)])
def test_a_key_that_may_change_the_numbers_changes_the_hash_and_blocks_resuming(tmp_path, key, value):
    cfg = C.validate_config({"dataset": "synthetic", "arch": "resnet8"})
    other = {**cfg, key: value}
    assert key not in C.RUNTIME_KEYS
    assert expansion.config_hash(cfg) != expansion.config_hash(other)
    run = RunDir(tmp_path)
    run.write_config(cfg)
    run.append_history({"iteration": 0})  # it trained: a run that never did gives way to the new config
    with pytest.raises(ConfigError, match=f"different {key}"):
        check_same_run(run, other)


@pytest.mark.parametrize("key, value", [("threads", 2), ("device", "cpu"), ("quiet", True), ("checkpoint_every", 7)])
def test_a_runtime_key_keeps_the_hash_and_the_run(tmp_path, key, value):
    cfg = C.validate_config({"dataset": "synthetic", "arch": "resnet8"})
    other = {**cfg, key: value}
    assert key in C.RUNTIME_KEYS and expansion.config_hash(cfg) == expansion.config_hash(other)
    run = RunDir(tmp_path)
    run.write_config(cfg)
    check_same_run(run, other)


def test_one_parser_for_every_command_line():
    assert C.parse_overrides(["shortcut_args={b = -6}", "width=null", "arch=resnet20"]) == {
        "shortcut_args": {"b": -6}, "width": None, "arch": "resnet20"}
    from ablation.__main__ import main

    assert main(["resnet8", "--shortcut", "exclusive-gate", "--arg", "b=-6"]) == 0


def test_a_key_added_later_keeps_earlier_runs_and_their_hashes(tmp_path, monkeypatch):
    cfg = C.validate_config({"dataset": "synthetic", "arch": "resnet8"})
    before = expansion.config_hash(cfg)
    run = RunDir(tmp_path)
    run.write_config(cfg)  # a run made before the key existed
    run.append_history({"iteration": 0})  # and trained (one that never did gives way to any config)
    monkeypatch.setitem(C.SCHEMA, "new_knob", C.Key(False, bool, "a later option", hash_if_set=True))
    monkeypatch.setitem(C.DEFAULTS, "new_knob", False)
    now = C.validate_config({"dataset": "synthetic", "arch": "resnet8"})
    assert now["new_knob"] is False and expansion.config_hash(now) == before
    check_same_run(run, now)  # the stored config lacks the key: it reads as its default
    assert C.stored(run.read_config())["new_knob"] is False and "new_knob" not in run.read_config()
    turned_on = {**now, "new_knob": True}
    assert expansion.config_hash(turned_on) != before
    with pytest.raises(ConfigError, match="different new_knob"):
        check_same_run(run, turned_on)
