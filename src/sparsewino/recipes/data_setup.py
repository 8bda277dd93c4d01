"""Datasets and loaders of a recipe: splits, limits, held-out validation images, augmentation."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ..data import Augmentation, BatchLoader, Normalize, dataset_spec, load_dataset
from ..data.registry import DatasetSpec
from ..data.tensor_dataset import TensorImageDataset
from ..train.distributed import DistContext
from .schema import DataConfig

__all__ = ["RecipeData", "prepare_data"]


class _Subset:
    """A view of a dataset restricted to ``indices`` (works for lazy image folders too)."""

    def __init__(self, dataset: Any, indices: torch.Tensor) -> None:
        self.dataset, self.indices = dataset, indices
        self.classes = dataset.classes
        self.labels = dataset.labels[indices]

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: torch.Tensor):
        return self.dataset.get_batch(self.indices[indices])


def _limit(dataset: Any, indices: torch.Tensor) -> Any:
    if isinstance(dataset, TensorImageDataset):
        return dataset.subset(indices)
    return _Subset(dataset, indices)


@dataclass
class RecipeData:
    """Everything the stages need about the data."""

    config: DataConfig
    spec: DatasetSpec
    train: Any | None
    test: Any
    validation: Any | None
    normalize: Normalize
    augmentation: Augmentation | None
    in_channels: int
    num_classes: int
    image_size: int
    ctx: DistContext
    eval_crop: int | None = None
    frames: int | None = None             # clip datasets: frames per sample (input is 5-D)

    def train_loader(self, batch_size: int | None, seed: int) -> BatchLoader:
        """Shuffling, augmenting loader over this rank's shard (drops the last partial batch)."""
        if self.train is None:
            raise ValueError("the training split was not loaded (prepare_data(..., train=False))")
        return BatchLoader(self.train, batch_size or self.config.batch_size, self.normalize, shuffle=True,
                           augmentation=self.augmentation, seed=seed, rank=self.ctx.rank,
                           world_size=self.ctx.world_size, drop_last=True,
                           num_workers=self.config.num_workers)

    def test_loader(self, whole: bool = False) -> BatchLoader:
        """Evaluation loader: every test image once across ranks (``whole``: all on this rank)."""
        rank, world = (0, 1) if whole else (self.ctx.rank, self.ctx.world_size)
        return BatchLoader(self.test, self.config.eval_batch_size, self.normalize,
                           eval_crop=self.eval_crop, rank=rank, world_size=world,
                           num_workers=self.config.num_workers)

    def test_images(self, count: int) -> torch.Tensor:
        """The first ``count`` test images, normalised (all of them when there are fewer)."""
        loader = BatchLoader(self.test, count, self.normalize, eval_crop=self.eval_crop)
        return next(iter(loader.epoch(0)))[0]

    def validation_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out training images as normalised batches (for particle filtering)."""
        if self.validation is None:
            raise ValueError("particle filtering needs held-out images: set data.validation "
                             "(e.g. 1000) in the recipe")
        loader = BatchLoader(self.validation, self.config.eval_batch_size, self.normalize,
                             eval_crop=self.eval_crop)
        return [(x.to(self.ctx.device), y.to(self.ctx.device)) for x, y in loader.epoch(0)]

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """Shape of a model input batch (``(batch, C, T, S, S)`` for clip datasets)."""
        if self.frames is not None:
            return (batch, self.in_channels, self.frames, self.image_size, self.image_size)
        return (batch, self.in_channels, self.image_size, self.image_size)


def prepare_data(config: DataConfig, ctx: DistContext, seed: int = 0, train: bool = True) -> RecipeData:
    """Load the recipe's datasets (train/test, limits, validation hold-out) and loaders' settings.

    Args:
        train: also load the training split; ``False`` (evaluation only) leaves ``train`` and
            ``validation`` ``None``.

    Raises:
        DatasetNotFoundError / DatasetError: from the dataset readers (clear messages).
        ValueError: limits or validation larger than the dataset.
    """
    spec = dataset_spec(config.dataset)
    training = load_dataset(spec.name, "train", config.root, **config.options) if train else None
    test = load_dataset(spec.name, "test", config.root, **config.options)
    validation = None
    if training is not None:
        if config.validation >= len(training):
            raise ValueError(f"data.validation ({config.validation}) must be smaller than the training "
                             f"set ({len(training)} images)")
        if config.validation:
            order = torch.randperm(len(training), generator=torch.Generator().manual_seed(seed))
            validation = _limit(training, order[:config.validation].sort().values)
            training = _limit(training, order[config.validation:].sort().values)
        if config.train_limit is not None and config.train_limit < len(training):
            training = _limit(training, torch.arange(config.train_limit))
    if config.test_limit is not None and config.test_limit < len(test):
        test = _limit(test, torch.arange(config.test_limit))
    augmentation = None
    if config.augment:
        augmentation = spec.augmentation
        if config.crop_padding is not None:
            augmentation = replace(augmentation, crop_padding=config.crop_padding)
        if config.flip is not None:
            augmentation = replace(augmentation, flip=config.flip)
    channels, classes, size = spec.in_channels, spec.num_classes, spec.image_size
    eval_crop = None
    if spec.name == "fake":
        channels = config.options.get("channels", 1)
        classes = config.options.get("num_classes", 10)
        size = config.options.get("image_size", 28)
    frames = config.options.get("frames") if spec.name == "fake" else None
    if spec.frames is not None:                 # clip datasets: the shape the data has
        channels, frames, height, width = test.images.shape[1:]
        if height != width:
            raise ValueError(f"{spec.name}: clips of {height}x{width} frames; the pipeline's "
                             "models take square frames (crop or resize them)")
        size, classes = height, len(test.classes)
    if spec.name == "imagenet":
        classes = len(test.classes)                  # the training classes (see load_dataset)
        size = eval_crop = min(spec.image_size, config.options.get("image_size", 256))
        if augmentation is not None:
            augmentation = replace(augmentation, crop_size=size)
    mean = spec.mean if len(spec.mean) == channels else spec.mean[:1] * channels
    std = spec.std if len(spec.std) == channels else spec.std[:1] * channels
    return RecipeData(config, spec, training, test, validation, Normalize(mean, std), augmentation,
                      channels, classes, size, ctx, eval_crop, frames)
