"""The oneDNN AVX2 workaround: nets narrower than 8 train on CPUs without AMX, with NCHW's gradients."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ablation import build_model
from ablation.nets.layers import SubsampledConv2d, conv2d, needs_workaround

# The exact shapes that corrupt the heap in oneDNN's AVX2 kernel (1x1, stride 2, 4 -> 8 channels, 16x16
# and 32x32, one thread), reached through the nets the suite and users build. ONEDNN_MAX_CPU_ISA=AVX2
# makes any x86 CPU with AVX2 or more take that kernel, so the test means the same on every machine.
SCRIPT = textwrap.dedent("""
    import torch
    from ablation import build_model
    torch.set_num_threads(1)
    for shortcut, size in (("projection-all", 16), ("exclusive-gate", 32), ("identity", 16)):
        kw = {"match": "projection"} if shortcut == "identity" else {}
        torch.manual_seed(0)
        net = build_model("resnet8", shortcut, width=4, **kw)
        ref = build_model("resnet8", shortcut, width=4, **kw)
        ref.load_state_dict(net.state_dict())
        net = net.to(memory_format=torch.channels_last)
        x = torch.randn(64, 3, size, size)
        for _ in range(5):
            net.zero_grad(); ref.zero_grad()
            net(x.contiguous(memory_format=torch.channels_last)).square().mean().backward()
            ref(x).square().mean().backward()
        worst = max((a.grad - b.grad).abs().max().item() for a, b in zip(net.parameters(), ref.parameters()))
        assert worst < 1e-4, (shortcut, worst)
    print("ok")
""")


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_narrow_projection_and_gate_train_under_onednn_avx2():
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == "ok"


def test_only_the_faulty_shape_is_routed_to_nchw():
    assert needs_workaround(4, 1, 2) and needs_workaround(7, 1, 2)
    assert not needs_workaround(8, 1, 2) and not needs_workaround(4, 3, 2) and not needs_workaround(4, 1, 1)
    assert type(conv2d(4, 8, 1, stride=2)) is SubsampledConv2d and type(conv2d(8, 16, 1, stride=2)) is torch.nn.Conv2d
    net = build_model("resnet8", "projection-all", width=4)
    assert any(isinstance(m, SubsampledConv2d) for m in net.modules())
    assert not any(isinstance(m, SubsampledConv2d) for m in build_model("resnet8", "projection-all", width=8).modules())


def test_subsampled_conv_gives_the_strided_convs_values():
    torch.manual_seed(0)
    conv = conv2d(4, 8, 1, stride=2, bias=True)
    for size in (8, 9):  # odd sizes: the same ceil(size / 2) outputs
        x = torch.randn(2, 4, size, size)
        y = conv(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(y, torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=2), atol=1e-6)
