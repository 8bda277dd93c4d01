"""Deterministic, resumable, rank-aware batch iteration with on-the-fly augmentation."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from .augment import Augmentation, Normalize, center_crop

__all__ = ["BatchLoader", "batch_seed"]


def batch_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, epoch, batch, rank, ...)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


class _Batches(torch.utils.data.Dataset):
    """Adapter so DataLoader workers can fetch whole batches by index lists."""

    def __init__(self, dataset: Any, batches: list[torch.Tensor]) -> None:
        self.dataset, self.batches = dataset, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.get_batch(self.batches[i])


class BatchLoader:
    """Iterate over ``(float images, labels)`` batches of a dataset, epoch by epoch.

    The order of epoch ``e`` comes from :class:`torch.utils.data.DistributedSampler` with
    ``seed`` (also on a single process), so every rank sees its own shard and a given epoch
    is the same whatever happened before it. Augmentation of batch ``b`` of epoch ``e`` on
    rank ``r`` draws from a generator seeded by ``(seed, e, b, r)``: iterating from batch
    ``start`` (after a resume) gives exactly the batches an uninterrupted run would see.

    Args:
        dataset: anything with ``len()`` and ``get_batch(indices) -> (uint8 images, labels)``.
        batch_size: images per batch on this rank.
        normalize: uint8 -> float conversion (:class:`Normalize`).
        shuffle: reshuffle every epoch (training) or keep the order (evaluation).
        augmentation: random crop/flip for training; ``None`` for evaluation.
        eval_crop: centre-crop size for evaluation batches (image folders), ``None`` = none.
        seed: seed of the order and of the augmentation.
        rank, world_size: this process's shard (``torch.distributed`` rank and size).
        drop_last: drop the last incomplete batch (training); evaluation keeps every image
            exactly once across ranks (no padding).
        num_workers: DataLoader worker processes to decode files (image folders).

    Examples:
        >>> from sparsewino.data import fake_dataset
        >>> train = fake_dataset(200)
        >>> loader = BatchLoader(train, 128, Normalize((0.286,), (0.353,)), shuffle=True)
        >>> [(tuple(images.shape), images.dtype) for images, labels in loader.epoch(0)]
        [((128, 1, 28, 28), torch.float32), ((72, 1, 28, 28), torch.float32)]
    """

    def __init__(self, dataset: Any, batch_size: int, normalize: Normalize, *, shuffle: bool = False,
                 augmentation: Augmentation | None = None, eval_crop: int | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = False,
                 num_workers: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.dataset, self.batch_size, self.normalize = dataset, batch_size, normalize
        self.shuffle, self.augmentation, self.eval_crop = shuffle, augmentation, eval_crop
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.drop_last, self.num_workers = drop_last, num_workers
        if len(dataset) < world_size:
            raise ValueError(f"dataset of {len(dataset)} images cannot be split over {world_size} ranks")

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for ``epoch``, in order."""
        if self.shuffle:
            sampler = DistributedSampler(range(len(self.dataset)), num_replicas=self.world_size,
                                         rank=self.rank, shuffle=True, seed=self.seed, drop_last=False)
            sampler.set_epoch(epoch)
            return torch.tensor(list(sampler), dtype=torch.int64)
        return torch.arange(self.rank, len(self.dataset), self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        count = len(self.indices(0))
        return count // self.batch_size if self.drop_last and count >= self.batch_size \
            else math.ceil(count / self.batch_size)

    def _batches(self, epoch: int) -> list[torch.Tensor]:
        order = self.indices(epoch)
        batches = list(order.split(self.batch_size))
        if self.drop_last and len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of ``epoch`` from batch number ``start`` on (for resuming mid-epoch)."""
        batches = self._batches(epoch)
        numbers = range(start, len(batches))
        if self.num_workers > 0:
            source = iter(DataLoader(_Batches(self.dataset, batches[start:]), batch_size=None,
                                     num_workers=self.num_workers))
        else:
            source = (self.dataset.get_batch(batches[b]) for b in numbers)
        try:
            for number, (images, labels) in zip(numbers, source):
                if self.augmentation is not None and self.augmentation.active:
                    generator = torch.Generator().manual_seed(batch_seed(self.seed, epoch, number, self.rank))
                    images = self.augmentation(images, generator)
                elif self.eval_crop is not None:
                    images = center_crop(images, self.eval_crop)
                yield self.normalize(images), labels
        finally:
            # An epoch abandoned early (a break, an exception) must not leave worker processes
            # behind: dropping the last reference to the iterator shuts them down now.
            del source
