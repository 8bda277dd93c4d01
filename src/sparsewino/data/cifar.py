"""Reader for the python-pickle archives of CIFAR-10 and CIFAR-100 (safe unpickling)."""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DatasetError, DatasetNotFoundError

__all__ = ["load_cifar_split", "safe_unpickle", "CIFAR_LAYOUTS"]

# directory name inside the extracted archive, batch files per split, meta file, label keys
CIFAR_LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {"folder": "cifar-10-batches-py",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "label_key": "labels", "names_key": "label_names",
                "archive": "cifar-10-python.tar.gz"},
    "cifar100": {"folder": "cifar-100-python", "train": ["train"], "test": ["test"],
                 "meta": "meta", "label_key": "fine_labels", "names_key": "fine_label_names",
                 "archive": "cifar-100-python.tar.gz"},
}

# Only the globals a numpy array pickle needs; anything else (code) is refused.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def safe_unpickle(path: Path) -> Any:
    """Unpickle a CIFAR batch file allowing only numpy arrays and plain containers.

    The CIFAR archives are Python 2 pickles, read with ``encoding="latin1"``. A pickle that
    references any other global (which could run code) is rejected with :class:`DatasetError`.
    """
    try:
        data = path.read_bytes()
        return _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OSError) as exc:
        raise DatasetError(f"cannot read CIFAR batch {path}: {exc}. The file is corrupt, "
                           "truncated or not a CIFAR python pickle; re-extract the archive.") from None


def _text(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    raw = safe_unpickle(path)
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a dict in the CIFAR batch, got {type(raw).__name__}")
    batch = {_text(k): v for k, v in raw.items()}
    if "data" not in batch or label_key not in batch:
        raise DatasetError(f"{path}: CIFAR batch lacks 'data' or '{label_key}' "
                           f"(keys: {sorted(map(str, batch))}); is this the right CIFAR variant?")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or data.shape[0] != labels.shape[0]:
        raise DatasetError(f"{path}: expected uint8 data of shape (N, 3072) and N labels, got "
                           f"{data.dtype} {data.shape} and {labels.shape[0]} labels.")
    return data, labels


def load_cifar_split(root: str | Path, variant: str, split: str
                     ) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """Images ``(N, 3, 32, 32)`` uint8, labels ``(N,)`` and class names of a CIFAR split.

    Args:
        root: the extracted archive directory (``cifar-10-batches-py``) or its parent.
        variant: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` or ``"test"``.
    """
    layout = CIFAR_LAYOUTS[variant]
    root = Path(root)
    folder = root if (root / layout[split][0]).is_file() else root / layout["folder"]
    files = [folder / name for name in layout[split]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{variant.upper()} {split} split not found: looked for {', '.join(missing)} in {folder} "
            f"(and in {root}). Download {layout['archive']} from the CIFAR website, extract it "
            f"(tar xzf {layout['archive']}) and pass its directory as the data root.")
    parts = [_read_batch(f, layout["label_key"]) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    names = None
    meta = folder / layout["meta"]
    if meta.is_file():
        info = {_text(k): v for k, v in safe_unpickle(meta).items()}
        if layout["names_key"] in info:
            names = [str(_text(n)) for n in info[layout["names_key"]]]
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels), names
