"""ImageNet-style image folders (``root/<split>/<class>/<image>``) read with Pillow."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import DatasetError, DatasetNotFoundError

__all__ = ["ImageFolderDataset", "IMAGE_EXTENSIONS", "find_split_dir"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff")
_SPLIT_NAMES = {"train": ("train",), "test": ("val", "test", "validation")}


def _pillow():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading image folders needs Pillow: pip install 'sparsewino[images]'") from None
    return Image


def find_split_dir(root: str | Path, split: str) -> Path:
    """``root/train`` for ``split="train"``; ``root/val`` (or ``test``/``validation``) for ``"test"``."""
    root = Path(root)
    for name in _SPLIT_NAMES[split]:
        if (root / name).is_dir():
            return root / name
    looked = ", ".join(str(root / n) for n in _SPLIT_NAMES[split])
    raise DatasetNotFoundError(
        f"image folder {split} split not found: looked for {looked}. Expected the ImageNet "
        "layout root/train/<class>/<image> and root/val/<class>/<image> (one sub-directory per "
        "class; sort a flat ImageNet validation folder into class folders first).")


class ImageFolderDataset:
    """Lazily loaded image folder: one sub-directory per class, images decoded by Pillow.

    Every image is converted to RGB (or L when ``channels=1``), its shorter side resized to
    ``image_size`` and centre-cropped to ``image_size x image_size``, giving uint8 batches
    ``(N, C, image_size, image_size)``; random crops and flips happen later, on batches.

    Args:
        directory: the split directory (``root/train``), holding one folder per class.
        image_size: side of the square images returned by :meth:`get_batch`.
        classes: class names to use (and their order); default: sorted sub-directories.
        channels: 3 (RGB) or 1 (grey).

    Examples:
        >>> ds = ImageFolderDataset("imagenet/train", image_size=256)     # doctest: +SKIP
        >>> images, labels = ds.get_batch(torch.arange(4))              # doctest: +SKIP
    """

    def __init__(self, directory: str | Path, image_size: int = 256,
                 classes: Sequence[str] | None = None, channels: int = 3) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DatasetNotFoundError(f"image folder {self.directory} does not exist")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        found = sorted(p.name for p in self.directory.iterdir() if p.is_dir())
        self.classes = list(classes) if classes is not None else found
        if not self.classes:
            raise DatasetNotFoundError(
                f"no class sub-directories in {self.directory}: expected {self.directory}/<class>/<image>")
        self.image_size, self.channels = int(image_size), channels
        files: list[str] = []
        labels: list[int] = []
        for index, name in enumerate(self.classes):
            folder = self.directory / name
            if not folder.is_dir():
                raise DatasetNotFoundError(f"class folder {folder} is missing (classes: {self.classes[:5]}...)")
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                    files.append(str(path))
                    labels.append(index)
        if not files:
            raise DatasetNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.directory}")
        self.files = files
        self.labels = torch.tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """Image ``index`` as uint8 ``(C, S, S)`` (shorter side resized, centre-cropped)."""
        image_module = _pillow()
        path = self.files[index]
        try:
            with image_module.open(path) as image:
                image = image.convert("RGB" if self.channels == 3 else "L")
                width, height = image.size
                scale = self.image_size / min(width, height)
                size = (max(self.image_size, round(width * scale)), max(self.image_size, round(height * scale)))
                image = image.resize(size, image_module.BILINEAR)
                left, top = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
                image = image.crop((left, top, left + self.image_size, top + self.image_size))
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DatasetError(f"cannot decode image {path}: {exc}. Remove or replace the file.") from None
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images ``(B, C, S, S)`` and int64 labels ``(B,)`` for ``indices``."""
        images = torch.stack([self.load_image(int(i)) for i in indices])
        return images, self.labels[indices]
