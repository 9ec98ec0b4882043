"""Signal propagation through a network, per residual unit, from one batch forward and backward.

The measurement behind ``python -m ablation.signal`` (its command line: :mod:`ablation.signal`).

For unit l with input ``x_l``, residual branch ``F(x_l)`` and output ``x_{l+1} = f(h(x_l) (+) F(x_l))``:

* forward (Brock, De and Smith 2021, "Characterizing signal propagation to close the performance
  gap in unnormalized ResNets", ICLR, Sec. 3: the *signal propagation plot*; their reference code is
  deepmind/deepmind-research, ``nfnets``): for the unit's output ``x_{l+1}`` and for its branch
  ``F``, the average over channels of the squared channel mean, ``mean_c (mean_{n,h,w} x)^2``, and
  the average channel variance, ``mean_c var_{n,h,w} x``;
* backward (He et al. 2016, "Identity Mappings in Deep Residual Networks", eq. 5): the norm of the
  gradient of the loss with respect to the unit's input, ``||dL/dx_l||`` over the batch, carried
  down rescaled to norm 1 at every unit and multiplied back in float64, so that float32 holds it at
  any depth. Unrolled
  through identity shortcuts, ``dL/dx_l = dL/dx_L (1 + d/dx_l sum_i F(x_i))``, so it does not
  vanish; with constant scaling ``h(x) = lam x`` the shortcut path carries ``prod_i lam_i``
  (eq. 7), i.e. ``lam^(L-l)``;
* backward without the head (``probe_grad_norm``): the same norm for ``P = <g, x_{L+1}>``, a fixed
  random direction ``g`` (N(0, 1) of the seed given, scaled to norm 1) on the last unit's output in
  place of the loss, i.e. ``||J_l^T g||`` with ``J_l = dx_{L+1}/dx_l``. ``dL/dx_l`` is this with
  ``g = dL/dx_{L+1}``, which the head decides: a classifier that starts at zero (SkipInit, Fixup) makes
  it 0 at every unit, and this one still shows what the units do to a gradient.

Brock et al. measure at initialisation with the network in training mode (batch statistics in BN),
which is what a first step of training sees; so does :func:`measure` by default. The input is a
batch of standard Gaussian images (the scale of channel-normalised data) and the labels are drawn
at random, unless real ones are given. With every residual branch zero-initialised
(:func:`zero_branches`: the last BN of F starts with gamma = 0, Goyal et al. 2017), ``F = 0`` and its
Jacobian is 0, so ``dL/dx_l = lam dL/dx_{l+1}`` exactly wherever shapes agree: the ``lam^L`` of eq. 7
with nothing added.

The units are observed through their ``tap`` (:class:`ablation.nets.resnet.UnitTap`), which hands out
the branch's output as it enters the combination; nothing here re-computes a unit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import nn

from ..core.errors import ConfigError

# one record per unit: where it is, the forward statistics of its output and of its branch, the backward
# one of its input. transition: the unit's shortcut is not x itself, as it changes the shape or applies a
# pre-activation before its split (ablation.nets.resnet: the first unit and shape changes of pre-activation nets)
UNIT_SIGNAL_FIELDS = ("unit", "stage", "shape_change", "transition", "out_sq_mean", "out_var", "branch_sq_mean", "branch_var",
          "grad_norm", "probe_grad_norm")
# a table written before the head-independent backward lacks only this column (it reads as not measured)
ADDED_FIELDS = ("probe_grad_norm",)


def channel_stats(t: torch.Tensor) -> tuple[float, float]:
    """(average over channels of the squared channel mean, average channel variance) of an NCHW tensor.

    Means and variances are over the batch and both spatial axes, per channel (population variance).
    """
    t = t.detach().float()
    dims = (0, 2, 3) if t.dim() == 4 else (0,)
    return float(t.mean(dims).pow(2).mean()), float(t.var(dims, correction=0).mean())


def zero_branches(model) -> None:
    """Start every residual branch at zero: the last BN inside each unit's F gets gamma = 0.

    Every order of :data:`ablation.nets.resnet.ORDERS` has a BN in F whose output reaches the branch's end
    only through ReLU and bias-free convolutions, so F(x) = 0 and dF/dx = 0 for any x.
    """
    for i, unit in enumerate(model.units()):
        bns = [m for m in unit.residual.modules() if isinstance(m, nn.BatchNorm2d)]
        if not bns:
            raise ConfigError(f"unit {i} has no BN in its residual branch: --zero-branches cannot zero it")
        with torch.no_grad():
            bns[-1].weight.zero_()


def gaussian_batch(batch: int, image: tuple, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of N(0, 1) images and uniformly drawn labels, the same for the same seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *image, generator=g), torch.randint(0, classes, (batch,), generator=g)


def measure(model, x: torch.Tensor, y: torch.Tensor, train: bool = True, probe_seed: int = 0) -> list[dict]:
    """One forward of ``(x, y)`` through ``model`` and two backward passes (through the loss, and from a fixed random
    direction on the last unit's output, drawn with ``probe_seed``); one record of :data:`UNIT_SIGNAL_FIELDS` per unit.

    ``train``: BN on the batch's statistics (and dropout on), as in a training step; BN's running
    averages move by one step, the weights do not change and no parameter gets a ``.grad``.
    ``branch_*`` are 0 for a unit whose tap reports no branch (a skipped one).
    """
    units = model.units()
    recs = []
    for i, u in enumerate(units):
        shape_change = u.stride != 1 or u.in_channels != u.out_channels
        recs.append({"unit": i, "stage": u.stage, "shape_change": shape_change,
                     "transition": shape_change or u.preact == "shared"})

    # ||d./dx_l|| as it arrived, after the rescaling of the units above; per backward pass
    scaled = {"grad_norm": [math.nan] * len(units), "probe_grad_norm": [math.nan] * len(units)}
    passing = ["grad_norm"]
    last = {}

    def rescale(i):
        def hook(g):
            n = float(g.detach().double().norm())
            scaled[passing[0]][i] = n
            # x_l reaches the loss only through unit l, so dividing here divides every gradient below by n:
            # the product of the n's is the true norm, and float32 neither overflows (1.3^600 at
            # resnet1202's standard init) nor underflows (0.5^600 with zero branches) on the way down
            return g / n if 0 < n < math.inf else g
        return hook

    def on_input(i):
        def hook(module, args):
            if args[0].requires_grad:
                args[0].register_hook(rescale(i))
        return hook

    def on_output(i):
        def hook(module, args, out):
            recs[i]["out_sq_mean"], recs[i]["out_var"] = channel_stats(out)
            if i == len(units) - 1:
                last["out"] = out.clone()  # the head may work on the last output in place
        return hook

    def on_tap(i):
        def hook(module, args, out):
            fx = args[1]
            recs[i]["branch_sq_mean"], recs[i]["branch_var"] = (0.0, 0.0) if fx is None else channel_stats(fx)
        return hook

    handles = []
    for i, u in enumerate(units):
        handles += [u.register_forward_pre_hook(on_input(i)), u.register_forward_hook(on_output(i)),
                    u.tap.register_forward_hook(on_tap(i))]
    was = model.training
    model.train(train)
    try:
        # the gradient w.r.t. the input only: every d./dx_l on the way, no weight gradients computed
        x = x.detach().clone().requires_grad_(True)
        loss = F_.cross_entropy(model(x).float(), y)
        torch.autograd.grad(loss, x, retain_graph=True)
        passing[0] = "probe_grad_norm"
        out = last["out"]
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(probe_seed), dtype=torch.float64)
        torch.autograd.grad(out, x, grad_outputs=(g / g.norm()).to(out.dtype).to(out.device))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    for column, norms in scaled.items():
        for rec, value in zip(recs, _unscaled(norms)):
            rec[column] = value
    return [{k: r.get(k, math.nan) for k in UNIT_SIGNAL_FIELDS} for r in recs]


def _unscaled(scaled: list[float]) -> list[float]:
    """The true norms from the rescaled ones of :func:`measure`: each times the rescalings above it."""
    out = [math.nan] * len(scaled)
    log_above = 0.0  # log of the product of the rescalings applied above unit l
    for i in reversed(range(len(scaled))):
        n = scaled[i]
        if not 0 < n < math.inf:  # 0: no gradient got here (a dead path); nan: none at all
            out[i] = n if n == 0 or math.isnan(n) or math.isnan(log_above) else math.inf
            if n != 0:
                log_above = math.nan
            continue
        log_true = math.log(n) + log_above
        out[i] = math.exp(log_true) if log_true < 709 else math.inf  # float64's range
        log_above = log_true
    return out


def backward_factors(recs: list[dict], column: str = "grad_norm") -> list[float]:
    """``||dL/dx_l|| / ||dL/dx_{l+1}||`` (of ``column``: ``probe_grad_norm`` for the head-independent one) for every
    unit l that is not a transition (He 2016 eq. 5 with constant scaling: exactly lam where the branch is zero)."""
    out = []
    for a, b in zip(recs, recs[1:]):
        if not a["transition"] and b[column] > 0:
            out.append(a[column] / b[column])
    return out


def backward_summary(recs: list[dict], column: str = "grad_norm") -> tuple[float, float]:
    """(first unit's over last unit's norm, geometric mean of :func:`backward_factors` above 0) of ``column``;
    nan where the last unit's norm is 0 or there is no factor."""
    last = recs[-1][column]
    factors = [f for f in backward_factors(recs, column) if f > 0]
    geo = math.exp(sum(map(math.log, factors)) / len(factors)) if factors else math.nan
    return (recs[0][column] / last if last > 0 else math.nan), geo


def summary_lines(recs: list[dict]) -> list[str]:
    """What the command prints under the table: the backward signal across the net and per unit, both ways."""
    lines = []
    for column, what in (("grad_norm", "backward through the loss: ||dL/dx_1|| / ||dL/dx_L||"),
                         ("probe_grad_norm", "backward from a random direction at the last unit, no head: "
                                             "||dP/dx_1|| / ||dP/dx_L||")):
        ratio, geo = backward_summary(recs, column)
        factors = [f for f in backward_factors(recs, column) if f > 0]
        lines.append(f"{what} = {ratio:.4g} over {len(recs)} units; per unit within a stage, transitions left out "
                     f"(geometric mean of {len(factors)}): {geo:.4g} (min {min(factors, default=math.nan):.4g}, "
                     f"max {max(factors, default=math.nan):.4g})")
    var = [r["out_var"] for r in recs]
    return [*lines, f"forward: output variance {var[0]:.4g} at unit 1, {var[-1]:.4g} at unit {len(recs)} "
                    f"(max {max(var):.4g})"]


def table_lines(recs: list[dict], every: int = 1) -> list[str]:
    head = (f"{'unit':>5} {'stage':>5} {'out sq mean':>12} {'out var':>11} {'branch var':>11} {'||dL/dx_l||':>12} "
            f"{'||dP/dx_l||':>12}")
    lines = [head]
    for r in recs:
        if every > 1 and r["unit"] % every and r["unit"] != len(recs) - 1 and not r["transition"]:
            continue
        mark = " *" if r["transition"] else ""
        lines.append(f"{r['unit'] + 1:>5} {r['stage'] + 1:>5} {r['out_sq_mean']:>12.4g} {r['out_var']:>11.4g} "
                     f"{r['branch_var']:>11.4g} {r['grad_norm']:>12.4g} {r['probe_grad_norm']:>12.4g}{mark}")
    return lines
