"""Moving Fashion-MNIST: deterministic clips of real Fashion-MNIST items moving over a canvas.

In the style of Moving MNIST: each clip is ``frames`` frames of ``size x size`` pixels showing
one item from the real Fashion-MNIST files (2x2-averaged to 14x14 on canvases under 56 pixels)
that moves with a seeded integer velocity.

* ``motion=False`` (dataset ``moving-fashion-mnist``): the item bounces at the borders with a
  velocity of up to 3 pixels per frame; the label is the item's class (10 classes). A single
  frame suffices.
* ``motion=True`` (``moving-fashion-mnist-motion``): the item moves right or left (or, with
  ``directions=4``, also down or up) at 1 to 3 pixels per frame on a torus (it wraps around the
  borders), and the label is ``class * directions + direction``. Every position is equally
  likely in every frame whatever the direction, so no single frame tells the directions
  apart: the label needs the motion as well as the appearance.

Everything is integer arithmetic driven by a SplitMix64 generator written out here, so a seed
gives the same bytes on every machine and NumPy version. The clips are generated once and
cached (``.npy`` files with a checksum) under ``$SPARSEWINO_CACHE_DIR`` (default
``~/.cache/sparsewino``) or ``cache_dir``, keyed by every parameter and a digest of the source
images.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import DatasetError
from .idx import load_idx_split
from .tensor_dataset import TensorImageDataset

__all__ = ["SplitMix64", "render_moving_clips", "moving_fashion_mnist", "cache_directory",
           "DIRECTION_NAMES", "DEFAULT_SAMPLES"]

#: Direction names of the motion variant, in label order.
DIRECTION_NAMES = ("right", "left", "down", "up")
#: Clips per split when ``num_samples`` is not given.
DEFAULT_SAMPLES = {"train": 6000, "test": 1000}
_VERSION = 1                        # bump when the rendering changes (it keys the cache)
_MASK64 = (1 << 64) - 1


class SplitMix64:
    """The SplitMix64 generator (Steele, Lea & Flood 2014) in plain integers: portable streams.

    Examples:
        >>> rng = SplitMix64(0)
        >>> [rng.below(10) for _ in range(5)]
        [8, 4, 0, 9, 1]
    """

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _MASK64

    def next(self) -> int:
        """The next 64-bit output."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        """An integer in ``[0, bound)`` (the high bits of one output; bias below 2**-50)."""
        if bound < 1:
            raise ValueError(f"bound must be >= 1, got {bound}")
        return (self.next() >> 11) * bound >> 53

    def between(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``."""
        return low + self.below(high - low + 1)


def _shrink(items: np.ndarray) -> np.ndarray:
    """2x2 block means of uint8 images ``(M, 28, 28)`` -> ``(M, 14, 14)``, rounded half up."""
    m, h, w = items.shape
    blocks = items.astype(np.uint16).reshape(m, h // 2, 2, w // 2, 2)
    return ((blocks.sum(axis=(2, 4)) + 2) // 4).astype(np.uint8)


def _bounce(position: int, velocity: int, limit: int) -> tuple[int, int]:
    """Move by ``velocity`` inside ``[0, limit]``, reflecting at the borders."""
    position += velocity
    while position < 0 or position > limit:
        if position < 0:
            position, velocity = -position, -velocity
        else:
            position, velocity = 2 * limit - position, -velocity
    return position, velocity


def render_moving_clips(items: np.ndarray, labels: np.ndarray, count: int, frames: int = 16,
                        size: int = 32, seed: int = 0, motion: bool = False,
                        directions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` clips of the ``items`` (the pure function behind the dataset).

    Args:
        items: uint8 ``(M, h, w)`` item images (already at their drawn size, ``h, w <= size``).
        labels: ``(M,)`` class of each item, in ``[0, 10)``.
        count: clips to render.
        frames: frames per clip.
        size: side of the square canvas.
        seed: the generator's seed (the same seed gives the same bytes everywhere).
        motion: the motion variant (see the module docstring), else bouncing items.
        directions: 2 (right/left) or 4 (right/left/down/up), motion variant only.

    Returns:
        ``(clips, labels)``: uint8 ``(count, 1, frames, size, size)`` and int64 ``(count,)``.

    Examples:
        >>> items = np.full((3, 4, 4), 200, dtype=np.uint8)
        >>> clips, labels = render_moving_clips(items, np.array([0, 1, 2]), 5, frames=4, size=8)
        >>> clips.shape, clips.dtype, int(clips[0, 0, 0].sum()) == 16 * 200
        ((5, 1, 4, 8, 8), dtype('uint8'), True)
    """
    items = np.asarray(items)
    labels = np.asarray(labels)
    if items.dtype != np.uint8 or items.ndim != 3 or labels.shape != items.shape[:1]:
        raise ValueError(f"items must be uint8 (M, h, w) with one label each, got "
                         f"{items.dtype} {items.shape} and labels {labels.shape}")
    if len(items) == 0 or count < 1 or frames < 1:
        raise ValueError(f"need items, count >= 1 and frames >= 1 (got {len(items)} items, "
                         f"count {count}, frames {frames})")
    if directions not in (2, 4):
        raise ValueError(f"directions must be 2 (right/left) or 4 (right/left/down/up), got "
                         f"{directions}")
    height, width = items.shape[1:]
    if height > size or width > size:
        raise ValueError(f"items of {height}x{width} do not fit a {size}x{size} canvas")
    rng = SplitMix64(seed)
    clips = np.zeros((count, 1, frames, size, size), dtype=np.uint8)
    out_labels = np.empty(count, dtype=np.int64)
    placed = np.zeros((size, size), dtype=np.uint8)
    for index in range(count):
        source = rng.below(len(items))
        placed[:] = 0
        placed[:height, :width] = items[source]
        if motion:
            direction = rng.below(directions)
            speed = rng.between(1, 3)
            y, x = rng.below(size), rng.below(size)
            dy, dx = ((0, speed), (0, -speed), (speed, 0), (-speed, 0))[direction]
            for t in range(frames):
                clips[index, 0, t] = np.roll(placed, ((y + t * dy) % size, (x + t * dx) % size),
                                             axis=(0, 1))
            out_labels[index] = int(labels[source]) * directions + direction
            continue
        limit_y, limit_x = size - height, size - width
        y, x = rng.between(0, limit_y), rng.between(0, limit_x)
        while True:                                     # a velocity that moves
            dy, dx = rng.between(-3, 3), rng.between(-3, 3)
            if (dy, dx) != (0, 0):
                break
        for t in range(frames):
            clips[index, 0, t] = np.roll(placed, (y, x), axis=(0, 1))
            y, dy = _bounce(y, dy, limit_y) if limit_y else (0, dy)
            x, dx = _bounce(x, dx, limit_x) if limit_x else (0, dx)
        out_labels[index] = int(labels[source])
    return clips, out_labels


def cache_directory(cache_dir: str | Path | None = None) -> Path:
    """Where generated clips are cached: ``cache_dir``, ``$SPARSEWINO_CACHE_DIR`` or
    ``~/.cache/sparsewino`` (``$XDG_CACHE_HOME/sparsewino`` when set), plus ``/clips``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("SPARSEWINO_CACHE_DIR")
    if env:
        return Path(env) / "clips"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sparsewino" / "clips"


def _digest(*arrays: np.ndarray) -> str:
    hasher = hashlib.sha256()
    for array in arrays:
        hasher.update(str(array.shape).encode())
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def _write_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(tmp, path)


def _cached(directory: Path, key: str, render) -> tuple[np.ndarray, np.ndarray]:
    """Load clips/labels cached under ``key`` (checksum verified), else render and store them."""
    clips_path, labels_path = directory / f"{key}.clips.npy", directory / f"{key}.labels.npy"
    meta_path = directory / f"{key}.json"
    if meta_path.is_file() and clips_path.is_file() and labels_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            clips = np.load(clips_path, allow_pickle=False)
            labels = np.load(labels_path, allow_pickle=False)
            if meta.get("sha256") == _digest(clips, labels):
                return clips, labels
        except (OSError, ValueError):
            pass                                        # unreadable or stale: render again
    clips, labels = render()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(clips_path, clips)
        _write_atomic(labels_path, labels)
        tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sha256": _digest(clips, labels), "version": _VERSION}))
        os.replace(tmp, meta_path)
    except OSError as exc:                              # a read-only home: still usable
        import warnings
        warnings.warn(f"moving Fashion-MNIST: could not cache the clips in {directory} ({exc}); "
                      "they will be generated again next time (set SPARSEWINO_CACHE_DIR)",
                      RuntimeWarning, stacklevel=3)
    return clips, labels


def moving_fashion_mnist(root: str | Path, split: str, *, frames: int = 16, image_size: int = 32,
                         num_samples: int | None = None, seed: int = 0, motion: bool = False,
                         directions: int = 2, cache_dir: str | Path | None = None,
                         class_names: Sequence[str] | None = None,
                         how_to_get: str = "") -> TensorImageDataset:
    """The moving Fashion-MNIST clips of ``split`` (generated once, then read from the cache).

    Args:
        root: directory of the Fashion-MNIST idx files (train clips use the training images,
            test clips the test images).
        split: ``"train"`` or ``"test"``.
        frames: frames per clip (default 16).
        image_size: canvas side (default 32; items are 14x14 below 56, 28x28 from 56 on).
        num_samples: clips (default 6000 train / 1000 test).
        seed: seed of the clips (the test split uses a different stream of the same seed).
        motion, directions: the motion variant (labels ``class * directions + direction``).
        cache_dir: cache directory (see :func:`cache_directory`).
        class_names: the 10 item class names (for the dataset's ``classes``).
        how_to_get: appended to the error when the Fashion-MNIST files are missing.

    Returns:
        A :class:`~sparsewino.data.TensorImageDataset` of uint8 clips ``(N, 1, T, S, S)``.

    Raises:
        DatasetNotFoundError: the Fashion-MNIST files are missing (with how to get them).
        DatasetError: impossible sizes.

    Examples:
        >>> train = moving_fashion_mnist("/usr/share/datasets/fashion-mnist", "train",
        ...                              num_samples=100)                 # doctest: +SKIP
        >>> train.images.shape                                           # doctest: +SKIP
        torch.Size([100, 1, 16, 32, 32])
    """
    for name, value, low in (("frames", frames, 1), ("image_size", image_size, 14),
                             ("num_samples", num_samples, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise DatasetError(f"moving Fashion-MNIST: {name} must be an int >= {low}, got {value!r}")
    count = num_samples or DEFAULT_SAMPLES[split]
    images, labels = load_idx_split(root, split, "Fashion-MNIST", how_to_get)
    items = images[:, 0].numpy()
    if image_size < 56:
        items = _shrink(items)
    item_labels = labels.numpy()
    variant = f"motion{directions}" if motion else "bounce"
    key = (f"moving-fashion-mnist-v{_VERSION}-{variant}-{split}-{count}x{frames}x{image_size}-"
           f"seed{seed}-{_digest(items, item_labels)[:16]}")
    stream = seed * 2 + (1 if split == "test" else 0)
    clips, clip_labels = _cached(cache_directory(cache_dir), key, lambda: render_moving_clips(
        items, item_labels, count, frames, image_size, stream, motion, directions))
    names = list(class_names or [str(i) for i in range(10)])
    if motion:
        names = [f"{name} {DIRECTION_NAMES[d]}" for name in names for d in range(directions)]
    return TensorImageDataset(torch.from_numpy(clips), torch.from_numpy(clip_labels), names)
