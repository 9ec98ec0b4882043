import os

import pytest
import torch

from ablation.training import data
from ablation.core.errors import ConfigError


def _find_placement(src, out, pad):
    """(dy, dx, flipped) placements of ``src`` that reproduce ``out`` after zero padding."""
    c, h, w = src.shape
    padded = torch.nn.functional.pad(src, (pad, pad, pad, pad))
    hits = []
    for flipped in (False, True):
        img = padded.flip(-1) if flipped else padded
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if torch.equal(img[:, dy: dy + h, dx: dx + w], out):
                    hits.append((dy, dx, flipped))
    return hits


def test_augment_is_a_zero_padded_shift_and_mirror_per_sample():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)  # no zeros, so padding is visible
    out = data.augment(x, g, pad=4, flip=True)
    assert out.shape == x.shape and out.dtype == torch.uint8
    placements = [_find_placement(x[i], out[i], 4) for i in range(len(x))]
    assert all(len(p) == 1 for p in placements)  # random pixels: exactly one explanation each
    shifts = {p[0][:2] for p in placements}
    flips = [p[0][2] for p in placements]
    assert len(shifts) > 10  # offsets differ per sample
    assert 10 < sum(flips) < 54  # about half mirrored
    assert (out == 0).any()  # some crops reach into the zero padding


def test_augment_without_flip_only_shifts_and_is_reproducible():
    x = torch.randint(1, 256, (32, 1, 6, 6), dtype=torch.uint8)
    a = data.augment(x, torch.Generator().manual_seed(3), pad=2, flip=False)
    b = data.augment(x, torch.Generator().manual_seed(3), pad=2, flip=False)
    assert torch.equal(a, b)
    assert all(_find_placement(x[i], a[i], 2)[0][2] is False for i in range(len(x)))
    centred = data.augment(x, torch.Generator().manual_seed(3), pad=0, flip=False)
    assert torch.equal(centred, x)


def test_normalize_uses_train_statistics(tmp_path):
    d = data.load("synthetic", tmp_path)
    z = data.normalize(d.train_x, d.mean, d.std)
    assert z.dtype == torch.float32
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def test_synthetic_is_deterministic_and_balanced(tmp_path):
    a = data.load("synthetic", tmp_path / "a")
    b = data.load("synthetic", tmp_path / "b")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.shape == (3, 16, 16) and a.num_classes == 4
    assert a.train_y.bincount().tolist() == [256] * 4


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    first = data.load("synthetic", tmp_path, image_size=8)
    assert (tmp_path / "cache" / "synthetic.pt").exists()
    assert (tmp_path / "cache" / "synthetic-8px.pt").exists()
    assert first.shape == (3, 8, 8)

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setitem(data._DECODERS, "synthetic", no_decoding)
    again = data.load("synthetic", tmp_path, image_size=8)
    assert torch.equal(first.train_x, again.train_x)
    assert not [p for p in os.listdir(tmp_path / "cache") if ".tmp" in p]


def test_corrupt_cache_is_rebuilt(tmp_path):
    clean = data.load("synthetic", tmp_path)
    (tmp_path / "cache" / "synthetic.pt").write_bytes(b"not a tensor file")
    assert torch.equal(data.load("synthetic", tmp_path).train_x, clean.train_x)


def test_train_subset_is_stratified_and_deterministic(tmp_path):
    d = data.load("synthetic", tmp_path, train_subset=102)
    assert len(d.train_y) == 102
    assert sorted(d.train_y.bincount().tolist()) == [25, 25, 26, 26]
    assert torch.equal(data.load("synthetic", tmp_path, train_subset=102).train_x, d.train_x)
    with pytest.raises(ConfigError):
        data.load("synthetic", tmp_path, train_subset=10**6)


def test_val_split_holds_out_train_images(tmp_path):
    full = data.load("synthetic", tmp_path)
    d = data.load("synthetic", tmp_path, val_split=200)
    assert len(d.test_y) == 200 and len(d.train_y) == len(full.train_y) - 200
    # held-out images come from the train split, not the test split
    flat = {bytes(x.flatten().tolist()) for x in full.train_x}
    assert all(bytes(x.flatten().tolist()) in flat for x in d.test_x[:20])
    with pytest.raises(ConfigError):
        data.load("synthetic", tmp_path, val_split=5000)


def test_cifar2_is_airplane_vs_bird_relabelled(tmp_path):
    # a stand-in CIFAR-10 in the cache, so no download is needed
    g = torch.Generator().manual_seed(0)
    fake = {f"{s}_{k}": v for s, n in (("train", 100), ("test", 50)) for k, v in
            (("x", torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)), ("y", torch.arange(n) % 10))}
    (tmp_path / "cache").mkdir()
    torch.save(fake, tmp_path / "cache" / "cifar10.pt")
    d = data.load("cifar2", tmp_path)
    assert d.num_classes == 2 and len(d.train_y) == 20 and len(d.test_y) == 10
    assert set(d.train_y.tolist()) == {0, 1}
    birds = fake["train_x"][fake["train_y"] == 2]
    assert torch.equal(d.train_x[d.train_y == 1], birds)


def test_missing_dataset_names_the_three_ways(tmp_path):
    with pytest.raises(data.DataNotFound) as err:
        data.load("cifar100", tmp_path, download=False)
    msg = str(err.value)
    assert isinstance(err.value, ConfigError) and "\n" not in msg
    assert "data_dir=DIR" in msg and "/usr/share/datasets/cifar100" in msg and "download=true" in msg


@pytest.mark.parametrize("val_split, train_subset", [(0, None), (24, None), (0, 300), (100, 900)])
def test_the_training_split_has_the_size_a_run_is_planned_for(tmp_path, val_split, train_subset):
    from ablation.training.length import training_images

    cfg = {"dataset": "synthetic", "val_split": val_split, "train_subset": train_subset}
    d = data.load("synthetic", tmp_path, val_split=val_split, train_subset=train_subset)
    assert len(d.train_y) == training_images(cfg)


def test_unknown_dataset_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cifar10"):
        data.load("cifar11", tmp_path)


@pytest.mark.skipif(not (data.SYSTEM_DIR / "fashion-mnist").exists(), reason="no system Fashion-MNIST")
def test_fashion_mnist_from_the_system_location(tmp_path):
    d = data.load("fashion-mnist", tmp_path, download=False, train_subset=1000)
    assert d.shape == (1, 28, 28) and d.num_classes == 10
    assert len(d.train_y) == 1000 and len(d.test_y) == 10000
    assert d.train_y.bincount().tolist() == [100] * 10
    whole = data.load("fashion-mnist", tmp_path, download=False)  # the sizes a run's length is computed from
    info = data.DATASETS["fashion-mnist"]
    assert (len(whole.train_y), len(whole.test_y)) == (info.train_images, info.test_images)


def test_pixel_mean_subtracts_the_mean_image_and_divides_by_nothing(tmp_path):
    d = data.load("synthetic", tmp_path, normalization="pixel-mean")
    assert d.pixel_mean.shape == d.shape
    z = data.to_input(d.train_x, d)
    assert torch.allclose(z.mean(dim=0), torch.zeros(d.shape), atol=1e-3)  # zero mean at every pixel
    assert torch.allclose(z, d.train_x.float() - d.pixel_mean)  # 0-255 units: no division
    channel = data.load("synthetic", tmp_path)  # the default: per-channel mean and std
    assert torch.equal(data.to_input(d.train_x, channel), data.normalize(d.train_x, d.mean, d.std))
    moved = d.to("cpu")
    assert moved.normalization == "pixel-mean" and torch.equal(moved.pixel_mean, d.pixel_mean)
    with pytest.raises(ConfigError, match="normalize='per-pixel'"):
        data.load("synthetic", tmp_path, normalization="per-pixel")


@pytest.mark.parametrize("normalization", ["channel", "pixel-mean"])
def test_pad_fill_mean_pads_after_normalising_with_the_same_crops(tmp_path, normalization):
    d = data.load("synthetic", tmp_path, normalization=normalization)
    x = torch.randint(1, 256, (64, 3, 16, 16), dtype=torch.uint8)  # no black pixel of its own
    black = data.batch_input(x, d, torch.Generator().manual_seed(5), pad=4, pad_fill="black")
    mean = data.batch_input(x, d, torch.Generator().manual_seed(5), pad=4, pad_fill="mean")
    padded = data.augment(x, torch.Generator().manual_seed(5), pad=4) == 0  # where the crops reach the padding
    assert padded.any() and not padded.all()
    assert torch.equal(mean[padded], torch.zeros(int(padded.sum())))  # zero after normalising: the mean
    black_value = data.to_input(torch.zeros_like(x), d)  # black, normalised
    assert torch.equal(black[padded], black_value[padded]) and (black[padded] != 0).all()
    if normalization == "channel":  # the same offsets and mirrors
        assert torch.allclose(black[~padded], mean[~padded], atol=1e-5)
    else:  # the mean image is subtracted where each pixel was, before it moved (He 2015's order)
        shifted = data.augment(data.to_input(x, d), torch.Generator().manual_seed(5), pad=4)
        assert torch.equal(mean, shifted) and not torch.allclose(black[~padded], mean[~padded])
    assert torch.equal(data.batch_input(x, d), data.to_input(x, d))  # no generator: no augmentation
