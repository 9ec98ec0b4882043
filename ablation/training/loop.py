"""The training loop of one run, resumable: ``train(cfg, run_dir) -> summary``.

It claims the run folder, resumes from the checkpoint (or starts fresh; from the start where the
run's recorded outcome is outdated, :mod:`ablation.core.outcomes`), steps through the schedule
(:mod:`.schedule`), records a history point at each evaluation (:mod:`.record`), stops on a fail
verdict (:mod:`.verdict`), checkpoints (:mod:`.checkpoint`) and writes the summary. Every choice is a
key of :data:`ablation.training.config.SCHEMA`; a step's pieces are :mod:`.step`, which the benchmark
times, so that it measures the trainer's own path.
"""

from __future__ import annotations

import sys
import time

import torch
from tqdm import tqdm

from ..core.locks import RunClaim
from ..core.layout import RunDir, refuse_reference
from . import data as datasets
from .tensorboard_events import board_for
from .checkpoint import check_same_run, load_checkpoint, save_checkpoint
from .config import validate_config
from .feasibility import check_fits
from .record import history_point, summary, unit_grad_norms
from .runtime import bf16_runs, device_label, setup_runtime
from .schedule import Schedule, accumulate, learning_rate
from .step import LoopState, build, next_batch, step


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
    refuse_reference(run.path, f"run folder {run.path}", "train into a folder of your own")
    check_same_run(run, cfg)  # before anything is read from it: a finished run may hold another config
    if run.is_finished():
        return _finished(run, finished_ok)
    check_fits(cfg)  # here, where it trains (a cluster's node), before the data and the net take memory
    device = setup_runtime(cfg)
    d = datasets.load_for(cfg).to(device)
    # the data is there: claim the run (another process may hold it) and only then write into it
    with RunClaim(run.path, ticket=ticket, device=device_label(device)) as claim:
        if run.is_finished():  # finished by another process while this one loaded the data
            return _finished(run, finished_ok)
        if run.outdated():  # an outcome an older rule decided: its checkpoint carries that rule's stop
            run.start_over()
        return _train_claimed(cfg, run, d, device, claim, callback)


def _finished(run: RunDir, finished_ok: bool) -> dict:
    if not finished_ok:
        raise AlreadyFinished(f"{run.path} is already finished")
    return run.read_summary()


def _train_claimed(cfg, run: RunDir, d, device, claim: RunClaim, callback) -> dict:
    run.write_config(cfg)
    plan = Schedule.of(cfg, len(d.train_y))
    model, fwd, opt, s = _resume(run, cfg, d, device, plan)
    eval_idx = None if cfg["eval_subset"] is None else datasets.stratified(d.test_y, cfg["eval_subset"]).to(device)
    clock = _Clock(s, device)
    amp = bf16_runs(cfg, device)
    bar = tqdm(total=plan.total, initial=s.it, desc=run.name, unit="it", dynamic_ncols=True,
               disable=cfg["quiet"] or not sys.stderr.isatty())
    with bar, board_for(cfg, run.path, s.it) as board:
        while s.it < plan.total and s.status is None:
            x, y = next_batch(d, s, cfg, device)
            lr = learning_rate(cfg, plan, s)
            for group in opt.param_groups:  # a group of lr_groups keeps its multiplier through warm-up and drops
                group["lr"] = lr * group.get("lr_scale", 1.0)
            out, loss = step(fwd, opt, x, y, device, amp)
            # opt.step leaves .grad in place, so the norms read here are the ones it applied
            norms = unit_grad_norms(model) if s.it + 1 in plan.grad_points else None
            s.it += 1
            accumulate(cfg, s, loss.detach(), (out.argmax(1) != y).sum(), len(y))
            bar.update()
            if s.it in plan.evals:
                clock.tick()
                rec = history_point(cfg, plan, s, model, d, eval_idx, lr, norms, amp, final=s.it == plan.total)
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
    result = summary(run, s, model, d, plan, device, cfg, amp)
    run.write_summary(result)
    return result


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


def _fresh(cfg, d, device):
    model, fwd, opt = build(cfg, d, device)  # seeds torch's generator with the run's seed
    return model, fwd, opt, LoopState.fresh(cfg, device)


def _resume(run: RunDir, cfg, d, device, plan: Schedule):
    """Model, compiled forward, optimiser and loop state: from the checkpoint if it reads, and its counters lie
    within the run's schedule (else it would end at once, as a finished run of a wrong length), else fresh."""
    run.sweep()
    model, fwd, opt, s = _fresh(cfg, d, device)
    if run.checkpoint.exists():
        try:
            load_checkpoint(run, model, opt, s, device)
            counters = (s.it, plan.total), (s.history_len, len(plan.evals)), (s.seen, None), (s.images, None)
            if not all(isinstance(v, int) and 0 <= v <= (hi if hi is not None else v) for v, hi in counters):
                raise ValueError(f"its counters lie outside the run's schedule of {plan.total} iterations")
        except Exception as exc:
            print(f"warning: unreadable checkpoint {run.checkpoint} ({type(exc).__name__}); starting the run over",
                  file=sys.stderr)
            model, fwd, opt, s = _fresh(cfg, d, device)
    run.keep_history(s.history_len)
    return model, fwd, opt, s
