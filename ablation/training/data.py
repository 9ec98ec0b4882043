"""Datasets held whole on the training device as uint8, augmented a batch at a time.

He et al. 2015 (4.2): "32x32 images, with the per-pixel mean subtracted"; "4 pixels are padded on
each side, and a 32x32 crop is randomly sampled from the padded image or its horizontal flip". Two
readings are offered (config keys ``normalize`` and ``pad_fill``):

- ``normalize="channel"`` (default): ``(x / 255 - mu_c) / sigma_c`` with the train split's
  per-channel mean and std, as fb.resnet.torch (datasets/cifar10.lua, ``ColorNormalize``).
  ``"pixel-mean"``: ``x - mu(c, i, j)``, the train split's mean image subtracted and nothing
  divided (He 2015), in 0-255 pixel units (Caffe's default input scale; the paper does not state
  the units, so this is unverified). The units do not change training here: BN follows conv1 in
  every order, and for ``y = W (c x)`` both ``BN(y)`` and ``dL/dW`` are the same for every scale
  ``c`` (up to BN's eps).
- ``pad_fill="black"`` (default): the uint8 image is padded with zeros, i.e. black, then
  normalised. ``"mean"``: padded with zeros after the subtraction, i.e. with the mean, as
  fb.resnet.torch (``ColorNormalize`` before ``RandomCrop(32, 4)``, which zero-pads) and as He
  2015's order of operations reads (inputs mean-subtracted, then padded; their code is not public).

The crop-and-flip of a whole batch is a single gather (airbench style), so no per-sample Python
runs in the training loop; the same random draws serve either fill. Decoded tensors are cached
under ``data_dir/cache``.
"""

from __future__ import annotations

import gzip
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import ConfigError
from ..core.files import save_torch, sweep_temporaries

SYSTEM_DIR = Path("/usr/share/datasets")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, known before it is loaded: for validation and cost estimates."""

    classes: int
    channels: int
    size: int  # native height = width
    train_images: int
    test_images: int


DATASETS = {
    "cifar10": DatasetInfo(10, 3, 32, 50000, 10000),
    "cifar100": DatasetInfo(100, 3, 32, 50000, 10000),
    "fashion-mnist": DatasetInfo(10, 1, 28, 60000, 10000),
    "cifar2": DatasetInfo(2, 3, 32, 10000, 2000),  # CIFAR-10's airplane and bird
    "synthetic": DatasetInfo(4, 3, 16, 1024, 256),
}
CIFAR2_CLASSES = (0, 2)  # airplane, bird
NORMALIZATIONS = ("channel", "pixel-mean")
PAD_FILLS = ("black", "mean")


class DataNotFound(ConfigError):
    """The dataset is in none of the three places it may come from."""


@dataclass
class Data:
    """Train and test split as uint8 ``(N, C, H, W)`` images and int64 labels, plus train statistics."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor  # per channel, in [0, 1] units, from the train split
    std: torch.Tensor
    num_classes: int
    pixel_mean: torch.Tensor | None = None  # (C, H, W) mean image of the train split, 0-255 units
    normalization: str = "channel"  # one of NORMALIZATIONS: what to_input does

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def to(self, device) -> "Data":
        move = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y", "mean", "std")}
        pixel_mean = None if self.pixel_mean is None else self.pixel_mean.to(device)
        return Data(**move, num_classes=self.num_classes, pixel_mean=pixel_mean, normalization=self.normalization)


def load(name: str, data_dir="data", download=True, image_size=None, val_split=0, train_subset=None,
         normalization: str = "channel") -> Data:
    """Load ``name`` (cached), hold out ``val_split`` train images as the test split, then subset.

    The statistics (per-channel mean and std, mean image) are those of the train split that remains.
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    tensors = _cached(name, Path(data_dir), download, image_size)
    train_x, train_y, test_x, test_y = (tensors[k] for k in ("train_x", "train_y", "test_x", "test_y"))
    if val_split:
        if not 0 < val_split < len(train_y):
            raise ConfigError(f"val_split={val_split} must be below the {len(train_y)} training images")
        # a fixed permutation, the same for every run, so all variants see the same held-out images
        perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))
        val, rest = perm[:val_split].sort().values, perm[val_split:].sort().values
        test_x, test_y, train_x, train_y = train_x[val], train_y[val], train_x[rest], train_y[rest]
    if train_subset is not None:
        keep = stratified(train_y, train_subset)
        train_x, train_y = train_x[keep], train_y[keep]
    return make_data(train_x, train_y, test_x, test_y, DATASETS[name].classes, normalization)


# the config keys that say which data a run trains and tests on, in the order load takes them
DATA_KEYS = ("dataset", "data_dir", "download", "image_size", "val_split", "train_subset", "normalize")


def load_key(cfg: dict) -> tuple:
    """What :func:`load_for` reads of ``cfg``: two configs with the same key train on the same data."""
    return tuple(cfg[k] for k in DATA_KEYS)


def load_for(cfg: dict) -> Data:
    """The data of a run's config (:func:`load` with its :data:`DATA_KEYS`)."""
    return load(*load_key(cfg))


def make_data(train_x, train_y, test_x, test_y, num_classes: int, normalization: str = "channel") -> Data:
    """:class:`Data` of uint8 images and labels, with the statistics of ``train_x``."""
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalize={normalization!r} is not one of {', '.join(NORMALIZATIONS)}")
    x = train_x.double() / 255
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    pixel_mean = (x.mean(dim=0) * 255).float()
    return Data(train_x, train_y, test_x, test_y, mean.float(), std.float(), num_classes, pixel_mean, normalization)


def stratified(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first ``n`` images taken class by class in equal shares (in original order)."""
    if not 0 < n <= len(labels):
        raise ConfigError(f"subset of {n} must be between 1 and {len(labels)} images")
    classes = labels.unique()
    share = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    picked = [torch.nonzero(labels == c).flatten()[:k] for c, k in zip(classes, share)]
    idx = torch.cat(picked).sort().values
    if len(idx) < n:  # a class ran short: fill from the remaining images in order
        rest = torch.ones(len(labels), dtype=torch.bool)
        rest[idx] = False
        idx = torch.cat([idx, torch.nonzero(rest).flatten()[: n - len(idx)]]).sort().values
    return idx


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back at a random offset and maybe mirror, per sample, in one gather.

    ``x`` may be uint8 images (zeros are black) or normalised floats (zeros are the mean). ``gen``
    is a CPU generator, so the draws are the same on every device and for either dtype.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen)
    cols = torch.arange(w).expand(n, w)
    if flip:
        mirror = torch.rand(n, 1, generator=gen) < 0.5
        cols = torch.where(mirror, w - 1 - cols, cols)
    rows, cols = to_device(dy + torch.arange(h), x.device), to_device(dx + cols, x.device)
    b = torch.arange(n, device=x.device)[:, None, None, None]
    ch = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[b, ch, rows[:, None, :, None], cols[:, None, None, :]]


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """Copy a small CPU tensor to ``device`` without waiting for the GPU's queue to drain."""
    return t if torch.device(device).type == "cpu" else t.pin_memory().to(device, non_blocking=True)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float, zero mean and unit variance per channel (train statistics)."""
    return (x.float().div_(255) - mean[:, None, None]) / std[:, None, None]


def subtract_pixel_mean(x: torch.Tensor, pixel_mean: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float ``x - mu(c, i, j)`` in 0-255 units: He 2015's per-pixel mean subtraction."""
    return x.float() - pixel_mean


def to_input(x: torch.Tensor, d: Data) -> torch.Tensor:
    """uint8 images -> the network's input, as ``d.normalization`` says."""
    if d.normalization == "pixel-mean":
        if d.pixel_mean is None:
            raise ConfigError("normalize=pixel-mean needs the train split's mean image; load the data with data.load")
        return subtract_pixel_mean(x, d.pixel_mean)
    return normalize(x, d.mean, d.std)


def batch_input(x: torch.Tensor, d: Data, gen: torch.Generator | None = None, *, pad: int = 4, flip: bool = True,
                pad_fill: str = "black") -> torch.Tensor:
    """A uint8 training batch -> the network's input, cropped and flipped first when ``gen`` is given.

    ``pad_fill="black"`` pads the uint8 images (then normalises); ``"mean"`` normalises first and
    pads with zeros, which are then the mean. Both draw the same offsets and mirrors from ``gen``.
    """
    if pad_fill not in PAD_FILLS:
        raise ConfigError(f"pad_fill={pad_fill!r} is not one of {', '.join(PAD_FILLS)}")
    if gen is not None and pad_fill == "black":
        x = augment(x, gen, pad, flip)
    x = to_input(x, d)
    if gen is not None and pad_fill == "mean":
        x = augment(x, gen, pad, flip)
    return x


# ---- loading and caching ---------------------------------------------------------------------------


_SPLITS = ("train_x", "train_y", "test_x", "test_y")


def _cached(name: str, data_dir: Path, download: bool, image_size) -> dict:
    native = DATASETS[name].size
    size = None if image_size in (None, native) else int(image_size)
    path = data_dir / "cache" / (f"{name}.pt" if size is None else f"{name}-{size}px.pt")
    if path.parent.is_dir():
        sweep_temporaries(path.parent, only_dead=True)  # a writer killed, or stopped by a full disk
    if path.exists():
        try:
            tensors = torch.load(path, weights_only=True)
        except Exception:  # a half-written or stale cache is simply rebuilt
            tensors = None
        problem = "it does not load" if tensors is None else cache_problem(tensors, name, size or native)
        if problem is None:
            return {k: tensors[k] for k in _SPLITS}
        print(f"note: rebuilding the dataset cache {path}: {problem}", file=sys.stderr)
    if size is not None:
        tensors = {k: (_resize(v, size) if k.endswith("_x") else v) for k, v in _cached(name, data_dir, download, None).items()}
    elif name == "cifar2":
        tensors = _two_classes(_cached("cifar10", data_dir, download, None))
    else:
        tensors = _DECODERS[name](data_dir, download)
    save_torch(path, {**tensors, "checksum": checksum(tensors)})
    return tensors


def checksum(tensors: dict) -> str:
    """CRC-32 of the four splits' bytes and shapes, in a fixed order: written with a cache, checked on load."""
    crc = 0
    for k in _SPLITS:
        t = tensors[k].contiguous()
        crc = zlib.crc32(repr((k, tuple(t.shape), str(t.dtype))).encode(), crc)
        crc = zlib.crc32(t.numpy().view(np.uint8).reshape(-1), crc)
    return f"crc32:{crc:08x}"


def cache_problem(tensors, name: str, size: int) -> str | None:
    """Why a loaded cache cannot be used (wrong keys, shapes, lengths, types, labels or checksum), or None.

    A cache that loads may still be damaged (a label array cut short trains on fewer images
    without a word), so its shapes are checked and, where the cache carries one, its checksum.
    """
    info = DATASETS[name]
    if not isinstance(tensors, dict) or not all(torch.is_tensor(tensors.get(k)) for k in _SPLITS):
        return "missing splits"
    for split in ("train", "test"):
        x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != (info.channels, size, size):
            return f"{split} images of shape {tuple(x.shape)} and type {x.dtype}"
        if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x) or len(y) == 0:
            return f"{len(y)} {split} labels for {len(x)} images"
        if int(y.min()) < 0 or int(y.max()) >= info.classes:
            return f"{split} labels outside 0..{info.classes - 1}"
    stored = tensors.get("checksum")
    if stored is not None and stored != checksum(tensors):
        return "its checksum does not match"
    return None


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    out = [F.interpolate(b.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
           for b in x.split(4096)]
    return torch.cat(out).round_().clamp_(0, 255).to(torch.uint8)


def _two_classes(t: dict) -> dict:
    out = {}
    for split in ("train", "test"):
        y = t[f"{split}_y"]
        keep = (y == CIFAR2_CLASSES[0]) | (y == CIFAR2_CLASSES[1])
        out[f"{split}_x"], out[f"{split}_y"] = t[f"{split}_x"][keep], (y[keep] == CIFAR2_CLASSES[1]).long()
    return out


def _not_found(name: str, data_dir: Path, system: Path, why: str) -> DataNotFound:
    fix = "and download=false (download=true fetches it)" if why == "download=false" else f"and {why}"
    return DataNotFound(
        f"dataset {name!r} not found under data_dir ({data_dir}) or at the system location ({system}) {fix}; put "
        f"it under data_dir (python -m ablation.train data_dir=DIR, python -m ablation.run --set data_dir=DIR) "
        f"or install it at {system}"
    )


def _cifar(name: str):
    def decode(data_dir: Path, download: bool) -> dict:
        from torchvision import datasets

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        system = SYSTEM_DIR / name
        for root, fetch in ((data_dir, False), (system, False), (data_dir, download)):
            try:
                splits = [cls(root=str(root), train=t, download=fetch) for t in (True, False)]
                break
            except Exception as exc:  # missing files, failed checksum or no network
                why = f"the download failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        else:
            raise _not_found(name, data_dir, system, why if download else "download=false")
        out = {}
        for split, ds in zip(("train", "test"), splits):
            out[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            out[f"{split}_y"] = torch.tensor(ds.targets, dtype=torch.int64)
        return out

    return decode


_FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _read_idx(path: Path) -> np.ndarray:
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path) -> list[Path] | None:
    found = []
    for stem in _FMNIST_FILES:
        hits = [folder / (stem + ext) for ext in (".gz", "") if (folder / (stem + ext)).exists()]
        if not hits:
            return None
        found.append(hits[0])
    return found


def _fashion_mnist(data_dir: Path, download: bool) -> dict:
    system = SYSTEM_DIR / "fashion-mnist"
    places = [data_dir, data_dir / "fashion-mnist", data_dir / "FashionMNIST" / "raw", system]
    files = next((f for f in map(_find_idx, places) if f), None)
    if files is None:
        if not download:
            raise _not_found("fashion-mnist", data_dir, system, "download=false")
        try:
            from torchvision import datasets

            datasets.FashionMNIST(root=str(data_dir), train=True, download=True)
            datasets.FashionMNIST(root=str(data_dir), train=False, download=True)
        except Exception as exc:
            raise _not_found("fashion-mnist", data_dir, system, f"the download failed ({type(exc).__name__})") from None
        files = _find_idx(data_dir / "FashionMNIST" / "raw")
    xtr, ytr, xte, yte = (torch.from_numpy(_read_idx(f).copy()) for f in files)
    return {"train_x": xtr[:, None], "train_y": ytr.long(), "test_x": xte[:, None], "test_y": yte.long()}


def _synthetic(data_dir: Path, download: bool) -> dict:
    """Class templates (a colour and an oriented grating) plus noise: learnable within a few dozen steps."""
    info = DATASETS["synthetic"]
    classes, c, s = info.classes, info.channels, info.size
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    templates = []
    for k in range(classes):
        colour = torch.rand(c, 1, 1, generator=g) * 120 + 60
        angle = torch.pi * k / classes
        grating = torch.cos((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * torch.pi / 6)
        templates.append(colour + 50 * grating)
    templates = torch.stack(templates)

    def draw(n):
        y = torch.arange(n) % classes
        y = y[torch.randperm(n, generator=g)]
        x = templates[y] + 40 * torch.randn(n, c, s, s, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y

    (xtr, ytr), (xte, yte) = draw(info.train_images), draw(info.test_images)
    return {"train_x": xtr, "train_y": ytr, "test_x": xte, "test_y": yte}


_DECODERS = {"cifar10": _cifar("cifar10"), "cifar100": _cifar("cifar100"), "fashion-mnist": _fashion_mnist,
             "synthetic": _synthetic}
