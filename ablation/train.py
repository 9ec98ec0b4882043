"""Train one configuration into a run directory, resumably: ``train(cfg, run_dir) -> summary``.

The schedule is He et al. 2015 (4.2) by default: SGD with momentum 0.9, weight decay 1e-4, batch 128,
lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k; ``warmup_lr=0.01`` holds a smaller rate
until the training error falls below 80% (their 110-layer recipe). Every choice is a key of ``DEFAULTS``.

    python -m ablation.train dataset=fashion-mnist arch=resnet20 steps=2 schedule_unit=epochs out=runs/a
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import time
import tomllib
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data as datasets
from .errors import ConfigError, did_you_mean
from .files import write_atomic

DEFAULTS = {
    # model (ablation.build_model)
    "arch": "resnet20", "shortcut": "identity", "shortcut_args": {}, "order": "original", "width": None,
    "match": "zero-pad",
    # data
    "dataset": "cifar10", "data_dir": "data", "download": True, "val_split": 0, "image_size": None,
    "train_subset": None, "augment": True, "flip": True,
    # optimisation; steps and milestones count schedule_unit
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False, "batch_size": 128,
    "schedule_unit": "iterations", "steps": 64000, "milestones": [32000, 48000], "gamma": 0.1,
    "warmup_lr": None, "warmup_until_error": 0.8, "warmup_max_iters": 2000,
    # recording; grad_norm_points are fractions of the schedule
    "evals": 40, "eval_batch_size": 1000, "eval_subset": None, "grad_norm_points": [0.0, 0.05, 0.5, 1.0],
    "fail_chance_fraction": 0.25,
    # runtime
    "seed": 0, "device": "auto", "threads": None, "bf16": True, "compile": False, "deterministic": False,
    "checkpoint_every": 2000, "quiet": False,
}

# Less obvious keys:
#   augment        4-pixel zero pad + random crop back (+ mirror half the images when flip); off: no augmentation
#   val_split      hold out that many train images (a fixed draw) and report them as the test split
#   warmup_*       while warming up the rate is warmup_lr; it ends when the training error over the last
#                  20 iterations is below warmup_until_error (a fraction) or after warmup_max_iters
#   eval_subset    evaluate a fixed stratified subset of the test split, except at the last point (whole split)
#   fail_chance_fraction  after that fraction of the schedule, train AND test error still within a small
#                  margin of chance (1 - 1/classes) end the run as "fail"; null: never; NaN/inf always fails
#   bf16           bf16 autocast where the hardware has it natively (GPUs, CPUs with AMX); else float32
# Errors in history.jsonl and summary.json are in percent.

_CHOICES = {"dataset": tuple(datasets.DATASETS), "optimizer": ("sgd", "adam"),
            "schedule_unit": ("iterations", "epochs"), "device": ("auto", "cpu", "cuda")}
# key -> (type, lowest, highest, None allowed); float bounds are inclusive, float accepts ints
_RULES = {
    "arch": (str,), "shortcut": (str,), "shortcut_args": (dict,), "order": (str,), "width": (int, 1, None, True),
    "match": (str,), "data_dir": (str,), "download": (bool,), "val_split": (int, 0), "image_size": (int, 4, None, True),
    "train_subset": (int, 1, None, True), "augment": (bool,), "flip": (bool,), "lr": (float, 1e-12),
    "momentum": (float, 0, 1), "weight_decay": (float, 0), "nesterov": (bool,), "batch_size": (int, 1),
    "steps": (float, 1e-9), "milestones": (list,), "gamma": (float, 1e-12), "warmup_lr": (float, 1e-12, None, True),
    "warmup_until_error": (float, 0, 1), "warmup_max_iters": (int, 0), "evals": (int, 1),
    "eval_batch_size": (int, 1), "eval_subset": (int, 1, None, True), "grad_norm_points": (list,),
    "fail_chance_fraction": (float, 0, 1, True), "seed": (int,), "threads": (int, 1, None, True),
    "bf16": (bool,), "compile": (bool,), "deterministic": (bool,), "checkpoint_every": (int, 1), "quiet": (bool,),
}
# keys that may change when a run is resumed: where and how fast it runs, not what it computes
_RUNTIME_KEYS = {"data_dir", "download", "device", "threads", "compile", "checkpoint_every", "quiet", "eval_batch_size"}


def validate_config(cfg: dict) -> dict:
    """``cfg`` merged over DEFAULTS, or ConfigError naming the first bad key or value."""
    for key in cfg:
        if key not in DEFAULTS:
            raise ConfigError(f"unknown config key {key!r}{did_you_mean(key, DEFAULTS)}")
    cfg = copy.deepcopy({**DEFAULTS, **cfg})
    for key, choices in _CHOICES.items():
        if cfg[key] not in choices:
            raise ConfigError(f"{key}={cfg[key]!r} is not one of {', '.join(choices)}{did_you_mean(cfg[key], choices)}")
    for key, (kind, lo, hi, none) in ((k, (*r, None, None, False)[:4]) for k, r in _RULES.items()):
        _check(key, cfg[key], kind, lo, hi, none)
    for key in ("milestones", "grad_norm_points"):
        for v in cfg[key]:
            _check(f"{key} entry", v, float, 0, 1 if key == "grad_norm_points" else None, False)
    if list(cfg["milestones"]) != sorted(cfg["milestones"]):
        raise ConfigError(f"milestones must ascend, got {cfg['milestones']}")
    if cfg["schedule_unit"] == "iterations" and cfg["steps"] != int(cfg["steps"]):
        raise ConfigError(f"steps={cfg['steps']} must be whole when schedule_unit is iterations")
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or cpu")
    from .models import check_model_args

    classes, channels, _ = datasets.DATASETS[cfg["dataset"]]
    check_model_args(cfg["arch"], cfg["shortcut"], cfg["order"], classes, channels, cfg["width"], cfg["match"],
                     **cfg["shortcut_args"])
    return cfg


def _check(key, value, kind, lo, hi, none):
    if value is None and none:
        return
    ok = isinstance(value, (int, float) if kind is float else kind) and not (kind in (int, float) and isinstance(value, bool))
    if ok and kind in (int, float) and not math.isfinite(value):
        ok = False
    if not ok:
        want = {int: "a whole number", float: "a number", bool: "true or false", str: "a string", dict: "a table",
                list: "a list"}[kind]
        raise ConfigError(f"{key} must be {want}{' or null' if none else ''}, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ConfigError(f"{key} must be {span}, got {value!r}")


# ---- the run -----------------------------------------------------------------------------------------


def train(cfg: dict, run_dir, *, callback=None) -> dict:
    """Train ``cfg`` into ``run_dir`` and return the summary; resumes from ``run_dir/checkpoint.pt``.

    ``callback(iteration)`` runs after every step (after any checkpoint), e.g. to stop a run early.
    """
    cfg, run_dir = validate_config(cfg), Path(run_dir)
    if (run_dir / "summary.json").exists():
        return json.loads((run_dir / "summary.json").read_text())
    _check_same_run(run_dir, cfg)
    device = _setup_runtime(cfg)
    d = datasets.load(cfg["dataset"], cfg["data_dir"], cfg["download"], cfg["image_size"], cfg["val_split"],
                      cfg["train_subset"]).to(device)
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the data is there: a run that cannot start leaves nothing
    write_atomic(run_dir / "config.json", json.dumps(cfg, indent=2))
    model, fwd, opt, s = _resume(run_dir, cfg, d, device)
    plan = _plan(cfg, len(d.train_y))
    eval_idx = None if cfg["eval_subset"] is None else datasets.stratified(d.test_y, cfg["eval_subset"]).to(device)
    clock = _Clock(s, device)
    amp = cfg["bf16"] and _fast_bf16(device)
    bar = tqdm(total=plan["total"], initial=s["it"], desc=run_dir.name, unit="it", dynamic_ncols=True,
               disable=cfg["quiet"] or not sys.stderr.isatty())
    with bar:
        while s["it"] < plan["total"] and s["status"] is None:
            x, y = _batch(d, s, cfg, device)
            lr = _lr(cfg, plan, s)
            for group in opt.param_groups:
                group["lr"] = lr
            out, loss = _step(fwd, opt, x, y, device, amp)
            # opt.step leaves .grad in place, so the norms read here are the ones it applied
            norms = _unit_grad_norms(model) if s["it"] + 1 in plan["grad_points"] else None
            s["it"] += 1
            _accumulate(cfg, s, loss.detach(), (out.argmax(1) != y).sum(), len(y))
            bar.update()
            if s["it"] in plan["evals"]:
                clock.tick()
                rec = _record(cfg, plan, s, model, d, eval_idx, lr, norms, amp, final=s["it"] == plan["total"])
                _append_history(run_dir, rec, s)
                bar.set_postfix_str(f"loss {rec['train_loss'] or float('nan'):.3f} err {rec['train_error']:.1f}% "
                                    f"{rec['images_per_s']:.0f} img/s")
                clock.mark()
            if s["it"] % cfg["checkpoint_every"] == 0 or s["it"] == plan["total"] or s["status"]:
                clock.tick()
                _save_checkpoint(run_dir, model, opt, s)
                clock.mark()
            if callback is not None:
                callback(s["it"])
    summary = _summary(cfg, run_dir, s, model, d, plan, device)
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


# ---- pieces of the loop ------------------------------------------------------------------------------

_WARMUP_WINDOW = 20  # iterations over which the warm-up training error is measured


def _setup_runtime(cfg) -> torch.device:
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


def _fast_bf16(device) -> bool:
    """bf16 autocast where the hardware multiplies bf16 natively: GPUs, and CPUs with AMX tiles.

    Measured on a 2-core AMX Xeon (resnet20, fashion-mnist, batch 128, 1 thread): ~360 img/s in bf16
    against ~200 in float32. Elsewhere on CPU it would be emulated and slower, so float32 stays.
    """
    if device.type == "cuda":
        return True
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def _autocast(device, on: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()


def _step(fwd, opt, x, y, device, amp):
    """One SGD/Adam step on a batch; the same code the benchmark times. Returns (logits, loss)."""
    with _autocast(device, amp):
        out = fwd(x)
        loss = F.cross_entropy(out.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return out, loss


def _build(cfg, d, device):
    from .models import build_model

    model = build_model(cfg["arch"], cfg["shortcut"], cfg["order"], d.num_classes, d.shape[0], cfg["width"],
                        cfg["match"], **cfg["shortcut_args"]).to(device)
    # channels_last measured faster on CPU too (resnet20, fashion-mnist, 1 thread: ~300 vs ~250 img/s)
    model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if cfg["compile"] else model
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return model, fwd, opt


def _plan(cfg, n_train) -> dict:
    """The schedule in iterations: length, lr milestones, evaluation points, gradient-norm points."""
    ipe = n_train // min(cfg["batch_size"], n_train)
    scale = 1 if cfg["schedule_unit"] == "iterations" else ipe
    total = max(1, round(cfg["steps"] * scale))
    grad_points = {min(total, max(1, round(f * total))) for f in cfg["grad_norm_points"]}
    evals = {max(1, round(total * k / cfg["evals"])) for k in range(1, cfg["evals"] + 1)} | grad_points | {total}
    return {"ipe": ipe, "total": total, "milestones": [round(m * scale) for m in cfg["milestones"]],
            "evals": evals, "grad_points": grad_points}


def _fresh_state(cfg, device) -> dict:
    zero = lambda dtype: torch.zeros((), dtype=dtype, device=device)  # noqa: E731
    return {"it": 0, "pos": 0, "perm": None, "status": None, "reason": None, "warm": cfg["warmup_lr"] is not None,
            "win_wrong": zero(torch.long), "win_seen": 0, "loss_sum": zero(torch.float), "wrong": zero(torch.long),
            "seen": 0, "batches": 0, "images": 0, "interval_time": 0.0, "train_time": 0.0, "wall_time": 0.0,
            "history_len": 0, "order_gen": torch.Generator().manual_seed(cfg["seed"]),
            "aug_gen": torch.Generator().manual_seed(cfg["seed"] + 1)}


def _prepare(x, d, device):
    return datasets.normalize(x, d.mean, d.std).contiguous(memory_format=torch.channels_last)


def _batch(d, s, cfg, device):
    """The next batch of a fresh random order per epoch (the last partial batch is dropped)."""
    n = len(d.train_y)
    take = min(cfg["batch_size"], n)
    if s["perm"] is None or s["pos"] + take > n:
        s["perm"], s["pos"] = torch.randperm(n, generator=s["order_gen"]), 0
    idx = datasets.to_device(s["perm"][s["pos"]: s["pos"] + take], device)
    s["pos"] += take
    x = d.train_x[idx]
    if cfg["augment"]:
        x = datasets.augment(x, s["aug_gen"], pad=4, flip=cfg["flip"])
    return _prepare(x, d, device), d.train_y[idx]


def _lr(cfg, plan, s) -> float:
    if s["warm"]:
        return cfg["warmup_lr"]
    return cfg["lr"] * cfg["gamma"] ** sum(s["it"] >= m for m in plan["milestones"])


def _accumulate(cfg, s, loss, wrong, n):
    """Sum the interval's training loss and errors on the device; read them only at evaluation points."""
    s["loss_sum"] += loss
    s["wrong"] += wrong
    s["seen"], s["batches"], s["images"] = s["seen"] + n, s["batches"] + 1, s["images"] + n
    if s["warm"]:  # He 2015: the small rate holds until the training error is below 80%
        s["win_wrong"] += wrong
        s["win_seen"] += n
        if s["it"] >= cfg["warmup_max_iters"]:
            s["warm"] = False
        elif s["it"] % _WARMUP_WINDOW == 0:
            s["warm"] = s["win_wrong"].item() / s["win_seen"] >= cfg["warmup_until_error"]
            s["win_wrong"].zero_()
            s["win_seen"] = 0


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
def _evaluate(model, x, y, d, batch_size, device, amp) -> tuple[float, float]:
    model.eval()
    loss, wrong = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(y), batch_size):
        with _autocast(device, amp):
            out = model(_prepare(x[i: i + batch_size], d, device)).float()
        loss += F.cross_entropy(out, y[i: i + batch_size], reduction="sum")
        wrong += (out.argmax(1) != y[i: i + batch_size]).sum()
    model.train()
    return loss.item() / len(y), 100.0 * wrong.item() / len(y)


class _Clock:
    """Training time (evaluation and checkpoints excluded) and wall time, both carried across resumes."""

    def __init__(self, s, device):
        self.s, self.cuda = s, device.type == "cuda"
        self.start = self.last = time.perf_counter()
        self.wall0 = s["wall_time"]

    def tick(self):
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.s["train_time"] += now - self.last
        self.s["interval_time"] += now - self.last
        self.s["wall_time"] = self.wall0 + now - self.start
        self.last = now

    def mark(self):
        self.last = time.perf_counter()


def _record(cfg, plan, s, model, d, eval_idx, lr, norms, amp, final) -> dict:
    """One history point; the interval sums restart. On the last point the whole test split is used."""
    gates = _gate_means(model)
    x, y = (d.test_x, d.test_y) if eval_idx is None or final else (d.test_x[eval_idx], d.test_y[eval_idx])
    test_loss, test_error = _evaluate(model, x, y, d, cfg["eval_batch_size"], x.device, amp)
    rec = {"iteration": s["it"], "epoch": round(s["it"] / plan["ipe"], 4), "lr": lr,
           "train_loss": _finite(s["loss_sum"].item() / s["batches"]),
           "train_error": round(100.0 * s["wrong"].item() / s["seen"], 4),
           "test_loss": _finite(test_loss), "test_error": round(test_error, 4),
           "wall_time": round(s["wall_time"], 3), "images_per_s": round(s["seen"] / max(s["interval_time"], 1e-9), 1)}
    if gates:
        rec["gate_mean"] = gates
    if norms is not None:
        rec["grad_norms"] = norms
    s["loss_sum"].zero_()
    s["wrong"].zero_()
    s["seen"] = s["batches"] = 0
    s["interval_time"] = 0.0
    _verdict(cfg, plan, s, rec, d.num_classes, len(y))
    return rec


def _verdict(cfg, plan, s, rec, classes, n_test):
    """Stop as ``fail`` on a non-finite loss, or on error still at chance late enough into the schedule."""
    if rec["train_loss"] is None or rec["test_loss"] is None:
        s["status"], s["reason"] = "fail", f"loss is not finite at iteration {s['it']}"
        return
    frac = cfg["fail_chance_fraction"]
    if frac is None or s["it"] < frac * plan["total"]:
        return
    p = 1 - 1 / classes
    # two points, plus two binomial standard deviations of the test estimate for small test sets
    at_chance = 100 * p - 2 - 200 * math.sqrt(p * (1 - p) / n_test)
    if rec["train_error"] >= at_chance and rec["test_error"] >= at_chance:
        s["status"] = "fail"
        s["reason"] = (f"error still at chance after {s['it']} of {plan['total']} iterations "
                       f"(train {rec['train_error']:.1f}%, test {rec['test_error']:.1f}%)")


def _finite(v):
    return v if math.isfinite(v) else None  # JSON has no NaN


# ---- files ------------------------------------------------------------------------------------------


def _check_same_run(run_dir: Path, cfg: dict):
    path = run_dir / "config.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return
    changed = sorted(k for k in cfg if k not in _RUNTIME_KEYS and old.get(k) != cfg[k])
    if changed:
        raise ConfigError(f"{run_dir} holds a run with different {', '.join(changed)}; choose another out= or "
                          f"delete the directory")


def _append_history(run_dir, rec, s):
    with open(run_dir / "history.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    s["history_len"] += 1


def _save_checkpoint(run_dir, model, opt, s):
    state = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in s.items() if not k.endswith("_gen")}
    rng = {"torch": torch.get_rng_state(), "order": s["order_gen"].get_state(), "aug": s["aug_gen"].get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    tmp = run_dir / f".checkpoint.pt.tmp{os.getpid()}"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state, "rng": rng}, tmp)
    os.replace(tmp, run_dir / "checkpoint.pt")


def _resume(run_dir, cfg, d, device):
    """Model, compiled forward, optimiser and loop state: from the checkpoint if it reads, else fresh."""
    path = run_dir / "checkpoint.pt"
    for stale in run_dir.glob(".*.tmp*"):  # left by a kill in the middle of a write
        stale.unlink(missing_ok=True)
    torch.manual_seed(cfg["seed"])
    model, fwd, opt = _build(cfg, d, device)
    s = _fresh_state(cfg, device)
    if path.exists():
        try:
            with warnings.catch_warnings():  # torch's own note about a damaged file would be a second line
                warnings.simplefilter("ignore")
                ck = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            for k, v in ck["state"].items():
                s[k] = v.to(device) if torch.is_tensor(v) and k != "perm" else v
            torch.set_rng_state(ck["rng"]["torch"])
            s["order_gen"].set_state(ck["rng"]["order"])
            s["aug_gen"].set_state(ck["rng"]["aug"])
            if "cuda" in ck["rng"] and device.type == "cuda":
                torch.cuda.set_rng_state_all(ck["rng"]["cuda"])
        except Exception as exc:
            print(f"warning: unreadable checkpoint {path} ({type(exc).__name__}); starting the run over",
                  file=sys.stderr)
            torch.manual_seed(cfg["seed"])
            model, fwd, opt = _build(cfg, d, device)
            s = _fresh_state(cfg, device)
    history = run_dir / "history.jsonl"
    if history.exists():  # points recorded after the checkpoint are recorded again
        lines = history.read_text().splitlines(keepends=True)
        if len(lines) != s["history_len"]:
            write_atomic(history, "".join(lines[: s["history_len"]]))
    return model, fwd, opt, s


def _summary(cfg, run_dir, s, model, d, plan, device) -> dict:
    from .models import count_flops, count_params

    hist = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    errors = [h["test_error"] for h in hist]
    return {"status": s["status"] or "ok", "reason": s["reason"],
            "final_test_error": errors[-1] if errors else None, "best_test_error": min(errors, default=None),
            "final_train_error": hist[-1]["train_error"] if hist else None, "params": count_params(model),
            "flops": count_flops(model, d.shape), "iterations": s["it"], "epochs": round(s["it"] / plan["ipe"], 4),
            "time_s": round(s["wall_time"], 2), "images_per_s": round(s["images"] / max(s["train_time"], 1e-9), 1),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}


# ---- command line -----------------------------------------------------------------------------------


def parse_overrides(args: list[str]) -> dict:
    """``key=value`` words; a value is read as JSON, else as a TOML value, else kept as a string."""
    cfg = {}
    for arg in args:
        key, sep, raw = arg.lstrip("-").partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r}")
        for parse in (json.loads, lambda r: tomllib.loads(f"v = {r}")["v"]):
            try:
                cfg[key.replace("-", "_")] = parse(raw)
                break
            except ValueError:
                continue
        else:
            cfg[key.replace("-", "_")] = raw
    return cfg


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in args):
        print("usage: python -m ablation.train key=value ... out=RUN_DIR\n\nkeys and defaults:")
        for k, v in DEFAULTS.items():
            print(f"  {k}={json.dumps(v)}")
        return 0
    try:
        cfg = parse_overrides(args)
        out = cfg.pop("out", None)
        if not isinstance(out, str):
            raise ConfigError("give the run directory as out=DIR")
        summary = train(cfg, out)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
