"""TensorBoard event files of a run (``tensorboard=true``): each history point as scalars, live.

The events lie next to ``history.jsonl``, so ``tensorboard --logdir results/quick/runs`` shows a
running study. The ``tensorboard`` package is optional: it is imported only when the key is on.
"""

from __future__ import annotations

import importlib.util

from ..core.errors import ConfigError

# history field -> scalar tag; gate means go under gate_mean/stage<k>
SCALARS = {"train_loss": "loss/train", "test_loss": "loss/test", "train_error": "error/train",
           "test_error": "error/test", "lr": "lr", "images_per_s": "images_per_s"}


def require_tensorboard() -> None:
    """ConfigError (one line) unless the tensorboard package can be imported."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("tensorboard=true needs the tensorboard package: pip install tensorboard "
                          "(or pip install 'ablation[tensorboard]')")


class Board:
    """Writes history records as scalars at their iteration; does nothing when ``writer`` is None."""

    def __init__(self, writer=None):
        self.writer = writer

    def record(self, rec: dict) -> None:
        if self.writer is None:
            return
        step = rec["iteration"]
        for field, tag in SCALARS.items():
            if rec.get(field) is not None:
                self.writer.add_scalar(tag, rec[field], step)
        for stage, g in (rec.get("gate_mean") or {}).items():
            self.writer.add_scalar(f"gate_mean/stage{stage}", g, step)
        self.writer.flush()  # live: each point is on disk when it is recorded

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is not None:
            self.writer.close()


def board_for(cfg: dict, run_dir, start: int = 0) -> Board:
    """A :class:`Board` writing into ``run_dir`` when ``cfg["tensorboard"]``; a resumed run (at iteration
    ``start``) drops the points after its checkpoint, which it records again."""
    if not cfg.get("tensorboard"):
        return Board()
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    # the point at ``start`` itself was recorded before the checkpoint was written: keep it
    return Board(SummaryWriter(str(run_dir), purge_step=start + 1 if start else None))
