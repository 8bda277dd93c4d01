"""Reader for the idx format of MNIST and Fashion-MNIST (plain or gzip-compressed)."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError, DatasetNotFoundError

__all__ = ["read_idx", "find_idx_file", "load_idx_split"]

# idx type codes -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one idx file (``.gz`` allowed) into a tensor.

    Args:
        path: an idx file such as ``train-images-idx3-ubyte.gz``.

    Returns:
        A tensor with the file's shape and type (uint8 for the (Fashion-)MNIST files).

    Raises:
        DatasetError: the file is truncated, not gzip although named ``.gz``, or not idx.

    Examples:
        >>> images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape                                                # doctest: +SKIP
        torch.Size([10000, 28, 28])
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}. The file is corrupt or truncated; "
                           "delete it and download or reinstall the dataset.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an idx file (bad magic number {raw[:4].hex() or 'empty'}); "
                           "expected the MNIST/Fashion-MNIST idx format.")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: idx header truncated ({len(raw)} bytes); the file is corrupt.")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"{path}: idx header announces shape {shape} ({expected} bytes) but the "
                           f"file has {len(raw)} bytes; it is truncated or corrupt.")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def find_idx_file(root: Path, stem: str) -> Path | None:
    """The first existing variant of ``stem`` (e.g. ``train-images-idx3-ubyte``) in ``root``.

    Accepts ``.gz`` or uncompressed files and the ``train-images.idx3-ubyte`` spelling.
    """
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, dotted):
        for suffix in ("", ".gz"):
            candidate = root / (name + suffix)
            if candidate.is_file():
                return candidate
    return None


def load_idx_split(root: str | Path, split: str, dataset: str, how_to_get: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64 of an MNIST-like split.

    Args:
        root: directory holding the four idx files.
        split: ``"train"`` or ``"test"`` (files ``train-*`` / ``t10k-*``).
        dataset: human name used in error messages.
        how_to_get: sentence appended to the not-found error.
    """
    root = Path(root)
    prefix = {"train": "train", "test": "t10k"}[split]
    found = {}
    for part, stem in (("images", f"{prefix}-images-idx3-ubyte"), ("labels", f"{prefix}-labels-idx1-ubyte")):
        path = find_idx_file(root, stem)
        if path is None:
            raise DatasetNotFoundError(
                f"{dataset} {split} {part} not found: looked for {stem}[.gz] in {root}"
                f"{'' if root.is_dir() else ' (directory does not exist)'}. {how_to_get}")
        found[part] = path
    images, labels = read_idx(found["images"]), read_idx(found["labels"])
    if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{dataset}: {found['images']} has shape {tuple(images.shape)} and "
                           f"{found['labels']} has shape {tuple(labels.shape)}; expected (N, H, W) "
                           "images and N labels.")
    if images.dtype != torch.uint8:
        raise DatasetError(f"{found['images']}: expected unsigned-byte pixels, got {images.dtype}")
    return images.unsqueeze(1).contiguous(), labels.long()
