"""In-memory uint8 image (and clip) datasets and a learnable synthetic dataset for tests and smoke runs."""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["TensorImageDataset", "fake_dataset"]


class TensorImageDataset:
    """Images held in memory as uint8 ``(N, C, H, W)`` (or clips ``(N, C, T, H, W)``) with int64
    labels ``(N,)``.

    Args:
        images: uint8 tensor ``(N, C, H, W)``, or ``(N, C, T, H, W)`` for clips of T frames.
        labels: integer tensor ``(N,)`` with values in ``[0, num_classes)``.
        classes: class names (length = number of classes).

    Examples:
        >>> ds = TensorImageDataset(torch.zeros(4, 1, 28, 28, dtype=torch.uint8),
        ...                         torch.tensor([0, 1, 0, 1]), ["a", "b"])
        >>> images, labels = ds.get_batch(torch.tensor([0, 3]))
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> None:
        if images.dtype != torch.uint8 or images.dim() not in (4, 5):
            raise ValueError(f"images must be uint8 (N, C, H, W) (or clips (N, C, T, H, W)), got "
                             f"{images.dtype} {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"need one label per image: {images.shape[0]} images, labels {tuple(labels.shape)}")
        labels = labels.long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"labels must lie in [0, {len(classes)}), got range "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        self.images, self.labels, self.classes = images, labels, list(classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images ``(B, C, H, W)`` and labels ``(B,)`` for ``indices``."""
        return self.images[indices], self.labels[indices]

    def subset(self, indices: torch.Tensor) -> "TensorImageDataset":
        """A dataset holding only ``indices`` (shares nothing mutable with this one)."""
        return TensorImageDataset(self.images[indices], self.labels[indices], self.classes)


def fake_dataset(num_samples: int, num_classes: int = 10, channels: int = 1, image_size: int = 28,
                 seed: int = 0, split: str = "train", noise: float = 24.0,
                 frames: int | None = None) -> TensorImageDataset:
    """A deterministic, learnable synthetic dataset: one oriented grating per class plus noise.

    Class ``k`` is a sinusoidal grating with its own orientation and frequency (drawn from
    ``seed``, shared by the splits) and a random phase per image, so convolutions followed by
    global pooling can tell the classes apart; noise and labels depend on ``split`` too. Used by
    tests and to smoke-test recipes without the real data.

    Args:
        num_samples: number of images.
        num_classes, channels, image_size: shape of the task.
        seed: seed of the class patterns and samples.
        split: ``"train"`` or ``"test"`` (different samples, same classes).
        noise: standard deviation of the per-pixel Gaussian noise, in uint8 units.
        frames: clips of this many frames ``(N, C, T, S, S)`` (the grating drifting by its
            phase, a per-class speed), for 3-D models; ``None``: images.

    Examples:
        >>> fake_dataset(8, num_classes=3, image_size=12).images.shape
        torch.Size([8, 1, 12, 12])
    """
    if num_samples < 1 or num_classes < 1 or channels < 1 or image_size < 1 or \
            (frames is not None and frames < 1):
        raise ValueError("fake_dataset: num_samples, num_classes, channels, image_size and frames "
                         "must be >= 1")
    base = torch.Generator().manual_seed(seed)
    angles = (torch.arange(num_classes) + torch.rand(num_classes, generator=base) * 0.5) \
        * (torch.pi / num_classes)
    frequencies = 0.6 + 0.9 * torch.rand(num_classes, generator=base)
    channel_gain = 0.5 + torch.rand(num_classes, channels, generator=base)
    gen = torch.Generator().manual_seed(seed * 2 + (1 if split == "test" else 0) + 1)
    labels = torch.randint(0, num_classes, (num_samples,), generator=gen)
    phase = torch.rand(num_samples, generator=gen) * 2 * torch.pi
    coords = torch.arange(image_size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    a, f = angles[labels][:, None, None], frequencies[labels][:, None, None]
    if frames is not None:              # clips: the phase drifts at a per-class speed
        speed = (0.2 + 0.6 * torch.rand(num_classes, generator=base))[labels]
        phase = phase[:, None] + speed[:, None] * torch.arange(frames)           # (N, T)
        grid = (xx * torch.cos(a) + yy * torch.sin(a))[:, None]                # (N, 1, S, S)
        wave = torch.sin(f[:, None] * grid + phase[:, :, None, None])            # (N, T, S, S)
        images = 128 + 90 * channel_gain[labels][:, :, None, None, None] * wave[:, None] \
            + noise * torch.randn(num_samples, channels, frames, image_size, image_size,
                                  generator=gen)
        return TensorImageDataset(images.clamp(0, 255).round().to(torch.uint8), labels,
                                  [f"class{i}" for i in range(num_classes)])
    wave = torch.sin(f * (xx * torch.cos(a) + yy * torch.sin(a)) + phase[:, None, None])  # (N, S, S)
    images = 128 + 90 * channel_gain[labels][:, :, None, None] * wave[:, None] \
        + noise * torch.randn(num_samples, channels, image_size, image_size, generator=gen)
    images = images.clamp(0, 255).round().to(torch.uint8)
    return TensorImageDataset(images, labels, [f"class{i}" for i in range(num_classes)])
