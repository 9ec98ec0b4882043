"""The public pieces of one training step, which the trainer runs and the benchmark and the cost estimate time.

:func:`build` makes the model and its optimiser, :class:`LoopState` is all the loop carries from step
to step (a checkpoint holds it), :func:`next_batch` draws a batch, :func:`step` takes one step and
:func:`evaluate` measures a model on a split.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

from ..nets.models import seeded_model
from ..nets.registry import get_shortcut
from . import data as datasets
from .config import model_options
from .runtime import autocast


def step(fwd, opt, x, y, device, amp):
    """One SGD/Adam step on a batch; the same code the benchmark times. Returns (logits, loss)."""
    with autocast(device, amp):
        out = fwd(x)
        loss = F.cross_entropy(out.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return out, loss


def initial_model(cfg, num_classes: int, in_channels: int):
    """The net run ``cfg`` starts from, on the CPU: a function of its config (and its seed) alone.

    It seeds torch's generator with the run's seed (:func:`ablation.nets.models.seeded_model`), so that
    whatever the process did before (other nets, a plugin's probe) the same config builds the same net.
    """
    return seeded_model(cfg["seed"], cfg["arch"], cfg["shortcut"], cfg["order"], num_classes, in_channels,
                        cfg["width"], cfg["match"], **model_options(cfg), **cfg["shortcut_args"])


def build(cfg, d, device):
    """(model, forward, optimiser) for ``cfg`` on data ``d``: the model in channels_last, maybe compiled.

    The model is :func:`initial_model`: torch's generator is seeded with the run's seed here.
    """
    model = initial_model(cfg, d.num_classes, d.shape[0]).to(device)
    # channels_last measured faster on CPU too (resnet20, fashion-mnist, 1 thread: ~300 vs ~250 img/s)
    model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if cfg["compile"] else model
    groups = param_groups(model, cfg)
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
    else:
        opt = torch.optim.Adam(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return model, fwd, opt


def param_groups(model, cfg) -> list[dict]:
    """The optimiser's parameter groups: every parameter at ``lr_scale`` 1, except those of each group of
    ``lr_groups`` (which the net's design names and selects), at that group's multiplier.

    The first group holds the others in the model's order, so that without ``lr_groups`` the optimiser
    is the one-group optimiser it always was (and reads the checkpoints it wrote). The trainer sets
    each group's rate to ``lr_scale`` times the schedule's at every step (:mod:`ablation.training.loop`).
    """
    design = get_shortcut(model.shortcut_name).cls
    taken, named = set(), []
    for group, scale in cfg["lr_groups"].items():
        params = [p for p in design.group_parameters(model, group) if id(p) not in taken]
        taken |= {id(p) for p in params}
        if params:
            named.append({"params": params, "lr": cfg["lr"] * scale, "lr_scale": float(scale)})
    rest = [p for p in model.parameters() if id(p) not in taken]
    return [{"params": rest, "lr": cfg["lr"], "lr_scale": 1.0}, *named]


def _zero(dtype, device):
    return torch.zeros((), dtype=dtype, device=device)


@dataclass
class LoopState:
    """Everything the loop carries from step to step; a checkpoint holds all of it.

    Interval sums (``loss_sum``, ``wrong``) stay on the device and are read only at evaluation
    points, so no step waits for the GPU.
    """

    it: int = 0
    pos: int = 0  # position in the epoch's permutation
    perm: torch.Tensor | None = None
    status: str | None = None  # None while running, then "fail"
    reason: str | None = None
    warm: bool = False  # still at warmup_lr
    win_wrong: torch.Tensor | None = None  # warm-up window: wrong answers and images seen
    win_seen: int = 0
    loss_sum: torch.Tensor | None = None  # this evaluation interval: summed loss, wrong answers, images
    wrong: torch.Tensor | None = None
    seen: int = 0
    batches: int = 0
    images: int = 0  # the whole run
    interval_time: float = 0.0
    train_time: float = 0.0
    wall_time: float = 0.0
    history_len: int = 0
    order_gen: torch.Generator = field(default_factory=torch.Generator)
    aug_gen: torch.Generator = field(default_factory=torch.Generator)

    @classmethod
    def fresh(cls, cfg, device) -> "LoopState":
        return cls(warm=cfg["warmup_lr"] is not None, win_wrong=_zero(torch.long, device),
                   loss_sum=_zero(torch.float, device), wrong=_zero(torch.long, device),
                   order_gen=torch.Generator().manual_seed(cfg["seed"]),
                   aug_gen=torch.Generator().manual_seed(cfg["seed"] + 1))

    def state_dict(self) -> dict:
        """Counters and sums (tensors on the CPU); the generators go with :meth:`rng_state`."""
        return {f.name: (v.cpu() if torch.is_tensor(v) else v) for f in fields(self)
                if not f.name.endswith("_gen") for v in [getattr(self, f.name)]}

    def load_state_dict(self, state: dict, device) -> None:
        for k, v in state.items():
            setattr(self, k, v.to(device) if torch.is_tensor(v) and k != "perm" else v)

    def rng_state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "order": self.order_gen.get_state(), "aug": self.aug_gen.get_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return rng

    def load_rng_state(self, rng: dict, device) -> None:
        torch.set_rng_state(rng["torch"])
        self.order_gen.set_state(rng["order"])
        self.aug_gen.set_state(rng["aug"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])


def _prepare(x, d):
    return datasets.to_input(x, d).contiguous(memory_format=torch.channels_last)


def next_batch(d, s: LoopState, cfg, device):
    """The next batch of a fresh random order per epoch (the last partial batch is dropped)."""
    n = len(d.train_y)
    take = min(cfg["batch_size"], n)
    if s.perm is None or s.pos + take > n:
        s.perm, s.pos = torch.randperm(n, generator=s.order_gen), 0
    idx = datasets.to_device(s.perm[s.pos: s.pos + take], device)
    s.pos += take
    x = datasets.batch_input(d.train_x[idx], d, s.aug_gen if cfg["augment"] else None, pad=4, flip=cfg["flip"],
                             pad_fill=cfg["pad_fill"])
    return x.contiguous(memory_format=torch.channels_last), d.train_y[idx]


@torch.inference_mode()
def evaluate(model, x, y, d, batch_size, device, amp) -> tuple[float, float]:
    """(mean cross-entropy, error in %) of ``model`` on uint8 images ``x`` with labels ``y``."""
    model.eval()
    loss, wrong = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(y), batch_size):
        with autocast(device, amp):
            out = model(_prepare(x[i: i + batch_size], d)).float()
        loss += F.cross_entropy(out, y[i: i + batch_size], reduction="sum")
        wrong += (out.argmax(1) != y[i: i + batch_size]).sum()
    model.train()
    return loss.item() / len(y), 100.0 * wrong.item() / len(y)
