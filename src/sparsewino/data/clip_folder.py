"""User clip data on disk: ``root/<split>/<class>/<clip>.npy``, one uint8 array of frames per file.

Each ``.npy`` file holds one clip as uint8 frames, ``(T, H, W)`` (grey) or ``(T, H, W, C)``
(channels last, as video frames are stored; C <= 4). Every clip of a dataset has the same
shape. The splits are ``root/train`` and ``root/val`` (or ``test``/``validation``); classes are
the sub-directories (sorted; the test split uses the training split's classes). Clips are
read once into memory as ``(N, C, T, H, W)``. A file of another dtype or shape, or one that is
not a plain ``.npy`` array, is refused with its path and what to do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import DatasetError, DatasetNotFoundError
from .folder import find_split_dir
from .tensor_dataset import TensorImageDataset

__all__ = ["load_clip_folder", "read_clip", "CLIP_EXTENSION"]

CLIP_EXTENSION = ".npy"


def read_clip(path: str | Path) -> np.ndarray:
    """One clip file as uint8 ``(C, T, H, W)``.

    Raises:
        DatasetError: not a readable ``.npy`` array, not uint8, or not ``(T, H, W)`` /
            ``(T, H, W, C)`` with C <= 4 (the message names the file and the fix).
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npy array ({exc}); save clips with "
                           "numpy.save(path, frames) where frames is a uint8 array") from None
    if not isinstance(array, np.ndarray):
        raise DatasetError(f"{path}: holds several arrays (.npz?); save one uint8 array of "
                           "frames per .npy file")
    if array.dtype != np.uint8:
        raise DatasetError(f"{path}: clips must be uint8 (0-255), got {array.dtype}; convert "
                           "with numpy.clip(frames * 255, 0, 255).round().astype(numpy.uint8) "
                           "for frames in [0, 1]")
    if array.ndim == 3:
        array = array[None]                                   # (1, T, H, W)
    elif array.ndim == 4 and 1 <= array.shape[-1] <= 4:
        array = np.moveaxis(array, -1, 0)                     # (C, T, H, W)
    else:
        raise DatasetError(f"{path}: a clip must be (T, H, W) grey frames or (T, H, W, C) with "
                           f"C <= 4 channels last, got shape {array.shape}")
    if min(array.shape) < 1:
        raise DatasetError(f"{path}: empty clip of shape {array.shape}")
    return np.ascontiguousarray(array)


def load_clip_folder(root: str | Path, split: str,
                     classes: Sequence[str] | None = None) -> TensorImageDataset:
    """Read the ``split`` clips of a clip folder (see the module docstring) into memory.

    Args:
        root: the folder holding ``train/`` and ``val/`` (or ``test/``).
        split: ``"train"`` or ``"test"``.
        classes: class names and order (default: the sorted sub-directories of ``train``).

    Returns:
        A :class:`~sparsewino.data.TensorImageDataset` of uint8 clips ``(N, C, T, H, W)``.

    Raises:
        DatasetNotFoundError: no split directory, class folders or clips.
        DatasetError: a clip of the wrong dtype or shape (the first one found is named).

    Examples:
        >>> clips = load_clip_folder("my_clips", "train")                  # doctest: +SKIP
        >>> clips.images.shape, clips.classes                            # doctest: +SKIP
        (torch.Size([120, 1, 16, 32, 32]), ['jump', 'run', 'walk'])
    """
    root = Path(root)
    directory = find_split_dir(root, split)
    if classes is None:
        base = root / "train" if (root / "train").is_dir() else directory
        classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    classes = list(classes)
    if not classes:
        raise DatasetNotFoundError(f"no class sub-directories in {directory}: expected "
                                   f"{directory}/<class>/<clip>.npy")
    clips: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for index, name in enumerate(classes):
        folder = directory / name
        if not folder.is_dir():
            raise DatasetNotFoundError(f"class folder {folder} is missing (classes: {classes})")
        for path in sorted(folder.rglob(f"*{CLIP_EXTENSION}")):
            clip = read_clip(path)
            if first is None:
                first = (path, clip.shape)
            elif clip.shape != first[1]:
                raise DatasetError(
                    f"{path}: clip of shape (C, T, H, W) = {clip.shape} differs from "
                    f"{first[0]} {first[1]}; every clip of a dataset needs the same frames, "
                    "size and channels (resample or crop them first)")
            clips.append(clip)
            labels.append(index)
    if not clips:
        raise DatasetNotFoundError(f"no {CLIP_EXTENSION} clips under {directory}/<class>/ "
                                   f"(classes {classes})")
    return TensorImageDataset(torch.from_numpy(np.stack(clips)), torch.tensor(labels), classes)
