import subprocess
import sys
import textwrap

import pytest
import torch

from ablation import ConfigError, Shortcut, build_model, describe_shortcuts, list_shortcuts, register_shortcut
from ablation.nets import registry
from ablation.nets.registry import load_plugin

PAPER_VARIANTS = ["identity", "zero-pad", "projection", "projection-all", "scale", "exclusive-gate",
                  "shortcut-gate", "dropout", "plain"]


def test_catalogue_lists_every_variant_with_parameters_and_defaults():
    described = {d["name"]: d for d in describe_shortcuts()}
    assert set(PAPER_VARIANTS) <= set(described)
    assert described["scale"]["params"] == {"lam_s": 0.5, "lam_f": 1.0}
    assert described["exclusive-gate"]["params"] == {"b": 0.0}
    assert described["dropout"]["params"] == {"p": 0.5, "rescale": True}
    assert described["identity"]["params"] == {}
    assert all(d["formula"] and d["paper"] for d in described.values() if d["name"] in PAPER_VARIANTS)


@register_shortcut("test-half-skip", formula="y = F(x) + alpha x", paper="(test)")
class HalfSkip(Shortcut):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", alpha: float = 0.5):
        super().__init__(in_channels, out_channels, stride, match)
        self.alpha = alpha

    def forward(self, x, fx):
        return fx + self.alpha * self.match(x)


def test_user_shortcut_registers_builds_and_trains_one_step():
    assert "test-half-skip" in list_shortcuts()
    assert {"name": "test-half-skip", "params": {"alpha": 0.5}, "formula": "y = F(x) + alpha x",
            "paper": "(test)"} in describe_shortcuts()
    torch.manual_seed(0)
    model = build_model("resnet8", "test-half-skip", width=4, alpha=0.25)
    assert all(u.shortcut.alpha == 0.25 for u in model.units())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_registering_a_non_shortcut_or_a_taken_name_fails():
    with pytest.raises(TypeError):
        register_shortcut("test-bad")(torch.nn.Identity)
    with pytest.raises(ConfigError, match="already registered"):
        @register_shortcut("identity")
        class Other(Shortcut):
            def forward(self, x, fx):
                return fx


PLUGIN = textwrap.dedent("""
    from ablation import Shortcut, register_shortcut

    @register_shortcut("test-plugin-skip", formula="y = F(x) + x", paper="(plugin)")
    class PluginSkip(Shortcut):
        def forward(self, x, fx):
            return fx + self.match(x)
""")


def test_plugin_file_registers_its_shortcuts(tmp_path):
    path = tmp_path / "my_shortcuts.py"
    path.write_text(PLUGIN)
    load_plugin(str(path))
    assert "test-plugin-skip" in list_shortcuts()
    assert build_model("resnet8", "test-plugin-skip", width=4)(torch.randn(1, 3, 8, 8)).shape == (1, 10)


def test_plugin_by_module_name_and_missing_plugins(tmp_path, monkeypatch):
    (tmp_path / "my_module_shortcuts.py").write_text(PLUGIN.replace("test-plugin-skip", "test-module-skip"))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugin("my_module_shortcuts")
    assert "test-module-skip" in list_shortcuts()
    with pytest.raises(ConfigError, match="cannot import plugin"):
        load_plugin("no_such_module_here")
    with pytest.raises(ConfigError, match="not found"):
        load_plugin(str(tmp_path / "missing.py"))


def test_plugin_used_from_the_command_line(tmp_path):
    path = tmp_path / "cli_shortcuts.py"
    path.write_text(PLUGIN.replace("test-plugin-skip", "cli-skip"))
    done = subprocess.run([sys.executable, "-m", "ablation", "resnet8", "--plugin", str(path),
                           "--shortcut", "cli-skip"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "shortcut cli-skip" in done.stdout


def _installed(tmp_path, monkeypatch, dist: str, entry: str):
    """A package as pip leaves it: a .dist-info naming an ablation.shortcuts entry point, on sys.path."""
    info = tmp_path / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[ablation.shortcuts]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch):
    pkg = tmp_path / "gatepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from ablation import Shortcut, register_shortcut\n"
        "@register_shortcut('entry-point-skip', formula='y = F(x) + 2 x')\n"
        "class Twice(Shortcut):\n"
        "    def forward(self, x, fx):\n"
        "        return fx + 2 * self.match(x)\n")
    _installed(tmp_path, monkeypatch, "gatepkg", "twice = gatepkg")
    assert "entry-point-skip" in registry.list_shortcuts()
    from ablation import build_model

    assert build_model("resnet8", "entry-point-skip", width=4) is not None


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path, monkeypatch):
    _installed(tmp_path, monkeypatch, "brokenpkg", "broken = no_such_module_here")
    with pytest.raises(ConfigError, match="'broken'.*failed to load"):
        registry.list_shortcuts()


@pytest.mark.parametrize("rescale,expected", [(True, 1.0), (False, 0.5)])
def test_dropout_shortcut_scales_x_by_its_expectation_in_both_readings(rescale, expected):
    """rescale=True: E[h(x)] = x, identity at evaluation. False (He 2016's wording): E[h(x)] = (1 - p) x."""
    torch.manual_seed(0)
    drop = build_model("resnet8", "dropout", width=8, p=0.5, rescale=rescale).units()[0].shortcut  # 8 -> 8 channels
    x, fx = torch.full((256, 8, 8, 8), 2.0), torch.zeros(256, 8, 8, 8)
    y = drop.train()(x, fx)
    kept = y != 0
    assert 0.45 < kept.float().mean() < 0.55  # half the elements are dropped in both readings
    assert torch.allclose(y[kept], torch.tensor(2.0 / 0.5 if rescale else 2.0))
    assert y.mean().item() == pytest.approx(2.0 * expected, rel=0.02)
    assert torch.equal(drop.eval()(x, fx), 2.0 * expected * torch.ones_like(x))
    # the gradient to x is masked the same way
    x.requires_grad_(True)
    drop.train()(x, fx).sum().backward()
    assert set(x.grad.unique().tolist()) == ({0.0, 2.0} if rescale else {0.0, 1.0})


def test_projection_bn_is_dropped_only_when_asked():
    from ablation.nets.shortcut_base import ProjectionBN
    from ablation.nets.registry import create_shortcut

    with_bn = create_shortcut("projection", 8, 16, 2)
    bare = create_shortcut("projection", 8, 16, 2, projection_bn=False)
    assert isinstance(with_bn.match, ProjectionBN)
    assert isinstance(bare.match, torch.nn.Conv2d)
    assert sum(p.numel() for p in with_bn.parameters()) - sum(p.numel() for p in bare.parameters()) == 2 * 16
    gate = create_shortcut("exclusive-gate", 8, 16, 2, "projection", projection_bn=False, b=-1.0)
    assert gate.gate.bias is not None and isinstance(gate.match, torch.nn.Conv2d)
