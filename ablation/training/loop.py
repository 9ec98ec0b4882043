"""Train one configuration into a run directory, resumably: ``train(cfg, run_dir) -> summary``.

The schedule is He et al. 2015 (4.2) by default: SGD with momentum 0.9, weight decay 1e-4, batch 128,
lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k; ``warmup_lr=0.01`` holds a smaller rate
until the training error falls below 80% (their 110-layer recipe). Every choice is a key of
:data:`ablation.training.config.SCHEMA`.

    python -m ablation.train dataset=fashion-mnist arch=resnet20 steps=2 schedule_unit=epochs out=runs/a

The public pieces (:func:`build`, :class:`LoopState`, :func:`next_batch`, :func:`step`,
:func:`use_bf16`) are what the benchmark times, so it measures the trainer's own path.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data as datasets
from .board import board_for
from .config import differing_keys, model_options, validate_config
from ..core.errors import ConfigError
from ..core.locks import Claim
from ..nets.models import build_model, count_flops, count_params
from ..core.results import CorruptFile, RunDir

# ---- the run -----------------------------------------------------------------------------------------


class AlreadyFinished(Exception):
    """The run was finished (by another process) before this one could train it."""


def train(cfg: dict, run_dir, *, callback=None, finished_ok: bool = True, ticket: str | None = None) -> dict:
    """Train ``cfg`` into ``run_dir`` and return the summary; resumes from ``run_dir/checkpoint.pt``.

    ``callback(iteration)`` runs after every step (after any checkpoint), e.g. to stop a run early.
    A finished run returns its stored summary, or raises :class:`AlreadyFinished` when not
    ``finished_ok`` (so that a study counts runs trained elsewhere apart). ``ticket`` names the
    study's task in the run's claim, so that a retry of it knows its own earlier attempt.
    """
    cfg, run = validate_config(cfg), RunDir(run_dir)
    check_same_run(run, cfg)  # before anything is read from it: a finished run may hold another config
    if run.is_finished():
        return _finished(run, finished_ok)
    device = setup_runtime(cfg)
    d = datasets.load(cfg["dataset"], cfg["data_dir"], cfg["download"], cfg["image_size"], cfg["val_split"],
                      cfg["train_subset"], cfg["normalize"]).to(device)
    # the data is there: claim the run (another process may hold it) and only then write into it
    with Claim(run.path, ticket=ticket, device=device_label(device)) as claim:
        if run.is_finished():  # finished by another process while this one loaded the data
            return _finished(run, finished_ok)
        return _train_claimed(cfg, run, d, device, claim, callback)


def _finished(run: RunDir, finished_ok: bool) -> dict:
    if not finished_ok:
        raise AlreadyFinished(f"{run.path} is already finished")
    return run.read_summary()


def _train_claimed(cfg, run: RunDir, d, device, claim: Claim, callback) -> dict:
    run.write_config(cfg)
    model, fwd, opt, s = _resume(run, cfg, d, device)
    plan = Plan.of(cfg, len(d.train_y))
    eval_idx = None if cfg["eval_subset"] is None else datasets.stratified(d.test_y, cfg["eval_subset"]).to(device)
    clock = _Clock(s, device)
    amp = cfg["bf16"] and use_bf16(device)
    bar = tqdm(total=plan.total, initial=s.it, desc=run.name, unit="it", dynamic_ncols=True,
               disable=cfg["quiet"] or not sys.stderr.isatty())
    with bar, board_for(cfg, run.path, s.it) as board:
        while s.it < plan.total and s.status is None:
            x, y = next_batch(d, s, cfg, device)
            lr = _lr(cfg, plan, s)
            for group in opt.param_groups:
                group["lr"] = lr
            out, loss = step(fwd, opt, x, y, device, amp)
            # opt.step leaves .grad in place, so the norms read here are the ones it applied
            norms = _unit_grad_norms(model) if s.it + 1 in plan.grad_points else None
            s.it += 1
            _accumulate(cfg, s, loss.detach(), (out.argmax(1) != y).sum(), len(y))
            bar.update()
            if s.it in plan.evals:
                clock.tick()
                rec = _record(cfg, plan, s, model, d, eval_idx, lr, norms, amp, final=s.it == plan.total)
                claim.ensure()
                run.append_history(rec)
                board.record(rec)
                s.history_len += 1
                bar.set_postfix_str(f"loss {rec['train_loss'] or float('nan'):.3f} err {rec['train_error']:.1f}% "
                                    f"{rec['images_per_s']:.0f} img/s")
                clock.mark()
            if s.it % cfg["checkpoint_every"] == 0 or s.it == plan.total or s.status:
                clock.tick()
                claim.ensure()
                save_checkpoint(run, model, opt, s)
                clock.mark()
            if callback is not None:
                callback(s.it)
    claim.ensure()
    summary = _summary(run, s, model, d, plan, device)
    run.write_summary(summary)
    return summary


# ---- the public pieces of a step ---------------------------------------------------------------------


def setup_runtime(cfg) -> torch.device:
    name = cfg["device"] if cfg["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg["threads"] is not None:
        torch.set_num_threads(cfg["threads"])
    if cfg["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it before first use
    # warn_only: a model op without a deterministic CUDA kernel (adaptive pooling's backward) should
    # say so once rather than stop a long run
    torch.use_deterministic_algorithms(cfg["deterministic"], warn_only=True)
    torch.backends.cudnn.deterministic = cfg["deterministic"]
    torch.backends.cudnn.benchmark = not cfg["deterministic"]
    return torch.device(name)


def device_label(device) -> str:
    """``cpu``, or ``cuda:N`` with N the GPU's index on its machine (a worker may see only its own GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    index = device.index or 0
    return f"cuda:{visible[index].strip() if index < len(visible) else index}"


def use_bf16(device) -> bool:
    """bf16 autocast where the hardware multiplies bf16 natively: GPUs, and CPUs with AMX tiles.

    Measured on a 2-core AMX Xeon (resnet20, fashion-mnist, batch 128, 1 thread): ~360 img/s in bf16
    against ~200 in float32. Elsewhere on CPU it would be emulated and slower, so float32 stays.
    """
    if torch.device(device).type == "cuda":
        return True
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def _autocast(device, on: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()


def step(fwd, opt, x, y, device, amp):
    """One SGD/Adam step on a batch; the same code the benchmark times. Returns (logits, loss)."""
    with _autocast(device, amp):
        out = fwd(x)
        loss = F.cross_entropy(out.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return out, loss


def build(cfg, d, device):
    """(model, forward, optimiser) for ``cfg`` on data ``d``: the model in channels_last, maybe compiled."""
    model = build_model(cfg["arch"], cfg["shortcut"], cfg["order"], d.num_classes, d.shape[0], cfg["width"],
                        cfg["match"], **model_options(cfg), **cfg["shortcut_args"]).to(device)
    # channels_last measured faster on CPU too (resnet20, fashion-mnist, 1 thread: ~300 vs ~250 img/s)
    model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if cfg["compile"] else model
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return model, fwd, opt


@dataclass
class Plan:
    """The schedule in iterations: length, lr milestones, evaluation points, gradient-norm points."""

    ipe: int  # iterations per epoch
    total: int
    milestones: list
    evals: set
    grad_points: set

    @classmethod
    def of(cls, cfg, n_train) -> "Plan":
        ipe = n_train // min(cfg["batch_size"], n_train)
        scale = 1 if cfg["schedule_unit"] == "iterations" else ipe
        total = max(1, round(cfg["steps"] * scale))
        grad_points = {min(total, max(1, round(f * total))) for f in cfg["grad_norm_points"]}
        evals = {max(1, round(total * k / cfg["evals"])) for k in range(1, cfg["evals"] + 1)} | grad_points | {total}
        return cls(ipe, total, [round(m * scale) for m in cfg["milestones"]], evals, grad_points)


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


# ---- pieces of the loop ------------------------------------------------------------------------------

_WARMUP_WINDOW = 20  # iterations over which the warm-up training error is measured


def _lr(cfg, plan: Plan, s: LoopState) -> float:
    if s.warm:
        return cfg["warmup_lr"]
    return cfg["lr"] * cfg["gamma"] ** sum(s.it >= m for m in plan.milestones)


def _accumulate(cfg, s: LoopState, loss, wrong, n):
    """Sum the interval's training loss and errors on the device; read them only at evaluation points."""
    s.loss_sum += loss
    s.wrong += wrong
    s.seen, s.batches, s.images = s.seen + n, s.batches + 1, s.images + n
    if s.warm:  # He 2015: the small rate holds until the training error is below 80%
        s.win_wrong += wrong
        s.win_seen += n
        if s.it >= cfg["warmup_max_iters"]:
            s.warm = False
        elif s.it % _WARMUP_WINDOW == 0:
            s.warm = s.win_wrong.item() / s.win_seen >= cfg["warmup_until_error"]
            s.win_wrong.zero_()
            s.win_seen = 0


def _unit_grad_norms(model) -> list[float]:
    """||dL/dW|| over each residual unit's parameters, in unit order."""
    norms = []
    for unit in model.units() if hasattr(model, "units") else []:
        squares = [p.grad.detach().float().pow(2).sum() for p in unit.parameters() if p.grad is not None]
        norms.append(torch.stack(squares).sum().sqrt().item() if squares else 0.0)
    return [round(v, 6) for v in norms]


def _gate_means(model) -> dict:
    """Mean gate value g per stage over the gated units (read after the last training step)."""
    by_stage = {}
    for unit in model.units() if hasattr(model, "units") else []:
        g = getattr(getattr(unit, "shortcut", None), "gate_mean", None)
        if g is not None:
            by_stage.setdefault(str(unit.stage), []).append(g)
    return {k: sum(v) / len(v) for k, v in by_stage.items()}


@torch.inference_mode()
def evaluate(model, x, y, d, batch_size, device, amp) -> tuple[float, float]:
    """(mean cross-entropy, error in %) of ``model`` on uint8 images ``x`` with labels ``y``."""
    model.eval()
    loss, wrong = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(y), batch_size):
        with _autocast(device, amp):
            out = model(_prepare(x[i: i + batch_size], d)).float()
        loss += F.cross_entropy(out, y[i: i + batch_size], reduction="sum")
        wrong += (out.argmax(1) != y[i: i + batch_size]).sum()
    model.train()
    return loss.item() / len(y), 100.0 * wrong.item() / len(y)


class _Clock:
    """Training time (evaluation and checkpoints excluded) and wall time, both carried across resumes."""

    def __init__(self, s: LoopState, device):
        self.s, self.cuda = s, device.type == "cuda"
        self.start = self.last = time.perf_counter()
        self.wall0 = s.wall_time

    def tick(self):
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.s.train_time += now - self.last
        self.s.interval_time += now - self.last
        self.s.wall_time = self.wall0 + now - self.start
        self.last = now

    def mark(self):
        self.last = time.perf_counter()


def _record(cfg, plan: Plan, s: LoopState, model, d, eval_idx, lr, norms, amp, final) -> dict:
    """One history point; the interval sums restart. On the last point the whole test split is used."""
    gates = _gate_means(model)
    x, y = (d.test_x, d.test_y) if eval_idx is None or final else (d.test_x[eval_idx], d.test_y[eval_idx])
    test_loss, test_error = evaluate(model, x, y, d, cfg["eval_batch_size"], x.device, amp)
    rec = {"iteration": s.it, "epoch": round(s.it / plan.ipe, 4), "lr": lr,
           "train_loss": _finite(s.loss_sum.item() / s.batches),
           "train_error": round(100.0 * s.wrong.item() / s.seen, 4),
           "test_loss": _finite(test_loss), "test_error": round(test_error, 4),
           "wall_time": round(s.wall_time, 3), "images_per_s": round(s.seen / max(s.interval_time, 1e-9), 1)}
    if gates:
        rec["gate_mean"] = gates
    if norms is not None:
        rec["grad_norms"] = norms
    s.loss_sum.zero_()
    s.wrong.zero_()
    s.seen = s.batches = 0
    s.interval_time = 0.0
    _verdict(cfg, plan, s, rec, d.num_classes, len(y))
    return rec


def _verdict(cfg, plan: Plan, s: LoopState, rec, classes, n_test):
    """Stop as ``fail`` on a non-finite loss, or on error still at chance late enough into the schedule."""
    if rec["train_loss"] is None or rec["test_loss"] is None:
        s.status, s.reason = "fail", f"loss is not finite at iteration {s.it}"
        return
    frac = cfg["fail_chance_fraction"]
    if frac is None or s.it < frac * plan.total:
        return
    p = 1 - 1 / classes
    # two points, plus two binomial standard deviations of the test estimate for small test sets
    at_chance = 100 * p - 2 - 200 * math.sqrt(p * (1 - p) / n_test)
    if rec["train_error"] >= at_chance and rec["test_error"] >= at_chance:
        s.status = "fail"
        s.reason = (f"error still at chance after {s.it} of {plan.total} iterations "
                    f"(train {rec['train_error']:.1f}%, test {rec['test_error']:.1f}%)")


def _finite(v):
    return v if math.isfinite(v) else None  # JSON has no NaN


# ---- checkpoints: save and load mirror each other ----------------------------------------------------


def check_same_run(run: RunDir, cfg: dict):
    """ConfigError if ``run`` holds a run of another config (runtime keys may differ).

    A run that never trained (no checkpoint, history or summary: a start that failed) holds
    nothing, and its config.json gives way to the new one. One that trained must say which
    config it holds: an unreadable or missing config.json then refuses, rather than hand back
    numbers that may belong to another config.
    """
    started = run.is_started()
    try:
        old = run.read_config()
    except CorruptFile:
        if started:
            raise
        return
    if not started:
        return
    if old is None:
        raise ConfigError(f"{run.path} holds a run without {run.config.name}, so which config it trained is "
                          f"unknown; choose another out= or delete the directory")
    changed = differing_keys(old, cfg)
    if changed:
        raise ConfigError(f"{run.path} holds a run with different {', '.join(changed)}; choose another out= or "
                          f"delete the directory")


def save_checkpoint(run: RunDir, model, opt, s: LoopState):
    run.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": s.state_dict(),
                         "rng": s.rng_state()})


def load_checkpoint(run: RunDir, model, opt, s: LoopState, device):
    with warnings.catch_warnings():  # torch's own note about a damaged file would be a second line
        warnings.simplefilter("ignore")
        ck = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    s.load_state_dict(ck["state"], device)
    s.load_rng_state(ck["rng"], device)


def _fresh(cfg, d, device):
    torch.manual_seed(cfg["seed"])
    model, fwd, opt = build(cfg, d, device)
    return model, fwd, opt, LoopState.fresh(cfg, device)


def _resume(run: RunDir, cfg, d, device):
    """Model, compiled forward, optimiser and loop state: from the checkpoint if it reads, else fresh."""
    run.sweep()
    model, fwd, opt, s = _fresh(cfg, d, device)
    if run.checkpoint.exists():
        try:
            load_checkpoint(run, model, opt, s, device)
        except Exception as exc:
            print(f"warning: unreadable checkpoint {run.checkpoint} ({type(exc).__name__}); starting the run over",
                  file=sys.stderr)
            model, fwd, opt, s = _fresh(cfg, d, device)
    run.keep_history(s.history_len)
    return model, fwd, opt, s


def _summary(run: RunDir, s: LoopState, model, d, plan: Plan, device) -> dict:
    hist = run.read_history()
    errors = [h["test_error"] for h in hist]
    return {"status": s.status or "ok", "reason": s.reason,
            "final_test_error": errors[-1] if errors else None, "best_test_error": min(errors, default=None),
            "final_train_error": hist[-1]["train_error"] if hist else None, "params": count_params(model),
            "flops": count_flops(model, d.shape), "iterations": s.it, "epochs": round(s.it / plan.ipe, 4),
            "time_s": round(s.wall_time, 2), "images_per_s": round(s.images / max(s.train_time, 1e-9), 1),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            # the thread count changes the order of float sums, hence the last digits of the numbers
            "threads": torch.get_num_threads()}
