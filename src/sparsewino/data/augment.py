"""Batch augmentation and normalisation written with torch ops (no torchvision)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["Augmentation", "Normalize", "random_crop", "random_flip", "center_crop"]


def random_crop(images: torch.Tensor, size: int | tuple[int, int], padding: int,
                generator: torch.Generator) -> torch.Tensor:
    """Pad every image by ``padding`` zeros, then crop a random ``size`` window from each.

    Args:
        images: ``(N, C, H, W)`` batch (any dtype); clips ``(N, C, T, H, W)`` get one window
            per clip, the same for all its frames.
        size: output side (int) or ``(height, width)``.
        padding: zeros added on every border before cropping.
        generator: source of the crop offsets (one draw per image).
    """
    if images.dim() > 4:                     # clips: the frames share their clip's window
        middle = images.shape[1:-2]
        flat = random_crop(images.reshape(images.shape[0], -1, *images.shape[-2:]), size,
                           padding, generator)
        return flat.reshape(images.shape[0], *middle, *flat.shape[-2:])
    height, width = (size, size) if isinstance(size, int) else size
    if padding:
        images = F.pad(images, (padding,) * 4)
    batch, _, full_h, full_w = images.shape
    if full_h < height or full_w < width:
        raise ValueError(f"random_crop: padded images {full_h}x{full_w} are smaller than the "
                         f"crop {height}x{width}")
    top = torch.randint(0, full_h - height + 1, (batch,), generator=generator)
    left = torch.randint(0, full_w - width + 1, (batch,), generator=generator)
    rows = top[:, None, None] + torch.arange(height)[None, :, None]     # (N, h, 1)
    cols = left[:, None, None] + torch.arange(width)[None, None, :]     # (N, 1, w)
    flat_index = (rows * full_w + cols).reshape(batch, 1, height * width)
    channels = images.shape[1]
    picked = images.reshape(batch, channels, full_h * full_w).gather(
        2, flat_index.expand(batch, channels, height * width))
    return picked.reshape(batch, channels, height, width)


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(images.shape[0], generator=generator) < p
    if not flip.any():
        return images
    images = images.clone()
    images[flip] = images[flip].flip(-1)
    return images


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Central ``size x size`` window of a batch (unchanged when already that size)."""
    height, width = images.shape[-2:]
    if height < size or width < size:
        raise ValueError(f"center_crop: images {height}x{width} are smaller than {size}")
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size]


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation of a batch: random crop (after zero padding) and flip.

    Args:
        crop_padding: zeros added on each border before the random crop (0: no padding).
        crop_size: side of the crop; ``None`` keeps the input size.
        flip: random horizontal flips (for natural images and clothes, not for digits).

    Examples:
        >>> aug = Augmentation(crop_padding=4, flip=True)
        >>> aug(torch.zeros(8, 3, 32, 32, dtype=torch.uint8), torch.Generator()).shape
        torch.Size([8, 3, 32, 32])
    """

    crop_padding: int = 0
    crop_size: int | None = None
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")
        if self.crop_size is not None and self.crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {self.crop_size}")

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.crop_size or self.flip)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding or self.crop_size:
            size = self.crop_size or tuple(images.shape[-2:])
            images = random_crop(images, size, self.crop_padding, generator)
        if self.flip:
            images = random_flip(images, generator)
        return images


class Normalize:
    """uint8 ``(N, C, H, W)`` (or clips ``(N, C, T, H, W)``) -> float32 ``(x / 255 - mean) / std``
    per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize: need one positive std per mean, got mean={mean}, std={std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.mean.shape[1]:
            raise ValueError(f"Normalize: images have {images.shape[1]} channels, statistics "
                             f"are for {self.mean.shape[1]}")
        shape = (1, -1) + (1,) * (images.dim() - 2)
        return (images.float() / 255.0 - self.mean.reshape(shape)) / self.std.reshape(shape)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"
