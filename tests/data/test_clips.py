"""Moving Fashion-MNIST clips (determinism, cache, motion labels) and user clip folders."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsewino.data import DatasetError, DatasetNotFoundError, Normalize, load_dataset
from sparsewino.data.augment import random_crop
from sparsewino.data.clip_folder import load_clip_folder
from sparsewino.data.moving import SplitMix64, moving_fashion_mnist, render_moving_clips

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="Fashion-MNIST files not installed (make dataset)")


def items(count: int = 12, size: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(1, 256, (count, size, size), dtype=np.uint8),
            np.arange(count) % 10)


def test_splitmix64_matches_the_reference_stream():
    rng = SplitMix64(0)               # Vigna's splitmix64.c with x = 0
    assert [rng.next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                              0x06C45D188009454F]


def test_rendering_is_deterministic_and_seeded():
    source, labels = items()
    a = render_moving_clips(source, labels, 20, frames=5, size=16, seed=3)
    b = render_moving_clips(source.copy(), labels.copy(), 20, frames=5, size=16, seed=3)
    c = render_moving_clips(source, labels, 20, frames=5, size=16, seed=4)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    assert a[0].tobytes() != c[0].tobytes()
    assert a[0].shape == (20, 1, 5, 16, 16) and a[0].dtype == np.uint8 and a[1].dtype == np.int64


def test_bouncing_items_stay_whole_and_move():
    source, labels = items()
    clips, out = render_moving_clips(source, labels, 30, frames=12, size=14, seed=1)
    totals = clips.reshape(30, 12, -1).astype(np.int64).sum(axis=2)
    # every frame shows the whole item (no wrap, no clipping): the same pixel sum each frame
    assert (totals == totals[:, :1]).all()
    moved = [(clips[i, 0, 0] != clips[i, 0, -1]).any() or (clips[i, 0, 0] != clips[i, 0, 1]).any()
             for i in range(30)]
    assert all(moved)
    assert set(out.tolist()) <= set(range(10))


def test_motion_labels_need_the_motion():
    """Labels are class * 2 + direction; reversing time turns a right-moving clip into a valid
    left-moving one of the same item, and each frame's position is uniform either way."""
    source, labels = items(count=10, size=4)
    clips, out = render_moving_clips(source, labels, 400, frames=6, size=12, seed=2, motion=True)
    classes, directions = out // 2, out % 2
    assert set(classes.tolist()) == set(range(10)) and set(directions.tolist()) == {0, 1}
    for i in range(40):
        frames = clips[i, 0].astype(np.int64)
        # the item moves along W only: each frame is the first one shifted along W
        shifts = [next(s for s in range(12) if np.array_equal(np.roll(frames[0], s, axis=1), f))
                  for f in frames]
        step = (shifts[1] - shifts[0]) % 12
        assert step in ((1, 2, 3) if directions[i] == 0 else (9, 10, 11))
        assert all((b - a) % 12 == step for a, b in zip(shifts, shifts[1:]))
    # first columns of the items: uniform over the canvas in both directions, in every frame
    for direction in (0, 1):
        chosen = clips[directions == direction, 0]                    # (n, T, H, W)
        occupancy = (chosen > 0).any(axis=2).mean(axis=0)             # (T, W)
        assert occupancy.min() > 0.15 and occupancy.max() < 0.55


def test_bad_rendering_arguments():
    source, labels = items()
    with pytest.raises(ValueError, match="uint8"):
        render_moving_clips(source.astype(np.float32), labels, 2)
    with pytest.raises(ValueError, match="do not fit"):
        render_moving_clips(source, labels, 2, size=4)
    with pytest.raises(ValueError, match="directions"):
        render_moving_clips(source, labels, 2, motion=True, directions=3)


@needs_fashion
def test_dataset_is_cached_and_the_same_bytes(tmp_path):
    first = moving_fashion_mnist(FASHION, "test", num_samples=40, frames=4, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 3 and any(name.endswith(".clips.npy") for name in files)
    again = moving_fashion_mnist(FASHION, "test", num_samples=40, frames=4, cache_dir=tmp_path)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    clips_file = next(tmp_path.glob("*.clips.npy"))
    clips_file.write_bytes(clips_file.read_bytes()[:-10] + b"corrupted!")      # a bad cache
    third = moving_fashion_mnist(FASHION, "test", num_samples=40, frames=4, cache_dir=tmp_path)
    assert torch.equal(third.images, first.images)
    digest = hashlib.sha256(first.images.numpy().tobytes()).hexdigest()
    fresh = moving_fashion_mnist(FASHION, "test", num_samples=40, frames=4,
                                 cache_dir=tmp_path / "other")
    assert hashlib.sha256(fresh.images.numpy().tobytes()).hexdigest() == digest
    assert first.images.shape == (40, 1, 4, 32, 32) and first.classes[0] == "0"


@needs_fashion
def test_registered_datasets(tmp_path):
    train = load_dataset("moving-fashion-mnist-motion", "train", num_samples=30, frames=3,
                         cache_dir=str(tmp_path))
    assert len(train.classes) == 20 and train.classes[:2] == ["T-shirt/top right",
                                                              "T-shirt/top left"]
    big = load_dataset("moving-fmnist", "test", num_samples=5, frames=2, image_size=64,
                       cache_dir=str(tmp_path))
    assert big.images.shape == (5, 1, 2, 64, 64)
    with pytest.raises(DatasetError, match="frames must be an int"):
        load_dataset("moving-fashion-mnist", "test", frames=0, cache_dir=str(tmp_path))


def test_missing_fashion_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("moving-fashion-mnist", "train", root=tmp_path, cache_dir=str(tmp_path))


def write_clips(root: Path, shape=(4, 6, 5), classes=("jump", "run"), per_class=3) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                np.save(folder / f"clip{i}.npy", rng.integers(0, 256, shape, dtype=np.uint8))


def test_clip_folder_reads_grey_and_channels_last_clips(tmp_path):
    write_clips(tmp_path)
    train = load_dataset("clip-folder", "train", root=tmp_path)
    assert train.images.shape == (6, 1, 4, 6, 5) and train.classes == ["jump", "run"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    raw = np.load(tmp_path / "train" / "run" / "clip1.npy")
    assert np.array_equal(train.images[4, 0].numpy(), raw)
    rgb = tmp_path / "rgb"
    write_clips(rgb, shape=(3, 4, 4, 3))
    clips = load_clip_folder(rgb, "test")
    first = np.load(rgb / "val" / "jump" / "clip0.npy")
    assert clips.images.shape == (6, 3, 3, 4, 4)
    assert np.array_equal(clips.images[0].numpy(), np.moveaxis(first, -1, 0))


@pytest.mark.parametrize("bad,message", [
    (np.zeros((4, 6, 5), dtype=np.float32), "must be uint8"),
    (np.zeros((4, 6), dtype=np.uint8), "must be \\(T, H, W\\)"),
    (np.zeros((4, 6, 5, 7), dtype=np.uint8), "C <= 4"),
    (np.zeros((5, 6, 5), dtype=np.uint8), "differs from"),
])
def test_clip_folder_refuses_wrong_dtype_and_shape(tmp_path, bad, message):
    write_clips(tmp_path)
    np.save(tmp_path / "train" / "run" / "zz_bad.npy", bad)
    with pytest.raises(DatasetError, match=message) as error:
        load_dataset("clip-folder", "train", root=tmp_path)
    assert "zz_bad.npy" in str(error.value)


def test_clip_folder_refuses_pickles_and_empty_folders(tmp_path):
    write_clips(tmp_path)
    np.save(tmp_path / "train" / "run" / "zz_obj.npy", np.array([{"a": 1}], dtype=object),
            allow_pickle=True)
    with pytest.raises(DatasetError, match="not a readable .npy array"):
        load_dataset("clip-folder", "train", root=tmp_path)
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no .npy clips"):
        load_dataset("clip-folder", "train", root=tmp_path / "empty")


def test_clip_batches_normalise_and_crop_per_clip():
    fake = load_dataset("fake", "train", num_samples=6, frames=5, image_size=10, channels=2)
    assert fake.images.shape == (6, 2, 5, 10, 10)
    normalized = Normalize((0.5, 0.25), (0.25, 0.5))(fake.images)
    expected = (fake.images[:, 1].float() / 255 - 0.25) / 0.5
    assert torch.allclose(normalized[:, 1], expected)
    frames = torch.arange(1, 17).reshape(4, 4) + 16 * torch.arange(3).reshape(3, 1, 1)
    clips = frames.to(torch.uint8).expand(2, 1, 3, 4, 4)
    cropped = random_crop(clips, 4, 2, torch.Generator().manual_seed(0))
    assert cropped.shape == clips.shape
    for clip in cropped[:, 0]:                  # one window per clip, the same in every frame
        padding = clip[0] == 0
        assert all(torch.equal(frame == 0, padding) for frame in clip)
        assert (clip[2][~padding].long() - clip[0][~padding].long() == 32).all()
