"""Tiny deterministic training setup shared by the training tests."""
import torch
from torch.nn.utils import prune

from sparsewino.data import Augmentation, BatchLoader, Normalize, fake_dataset
from sparsewino.models import create_model
from sparsewino.train import OptimizerConfig, ScheduleConfig, TrainConfig


def tiny_model(seed=0, masked=True):
    torch.manual_seed(seed)
    model = create_model("small_vgg", in_channels=1, num_classes=4, widths=[8, "M", 16], dropout=0.3)
    if masked:
        prune.l1_unstructured(model.features[0], "weight", amount=0.5)
    return model


def tiny_loaders(samples=96, batch=16, seed=3, rank=0, world=1):
    norm = Normalize((0.5,), (0.25,))
    train = BatchLoader(fake_dataset(samples, num_classes=4, image_size=12), batch, norm, shuffle=True,
                        augmentation=Augmentation(2, flip=True), seed=seed, rank=rank, world_size=world)
    test = BatchLoader(fake_dataset(40, num_classes=4, image_size=12, split="test"), 16, norm,
                       rank=rank, world_size=world)
    return train, test


def tiny_config(**changes):
    base = dict(epochs=3, batch_size=16, optimizer=OptimizerConfig(lr=0.2),
                schedule=ScheduleConfig("cosine", warmup_epochs=0.5), checkpoint_every=4, log_every=2)
    base.update(changes)
    return TrainConfig(**base)
