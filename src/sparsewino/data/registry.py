"""Dataset registry: names, shapes, statistics, default locations and how to load each."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from .augment import Augmentation
from .cifar import load_cifar_split
from .folder import ImageFolderDataset, find_split_dir
from .idx import load_idx_split
from .tensor_dataset import TensorImageDataset, fake_dataset

__all__ = ["DatasetSpec", "DATASETS", "dataset_spec", "load_dataset", "available_datasets",
           "default_root"]

Dataset = Union[TensorImageDataset, ImageFolderDataset]

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a dataset before loading it."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: Augmentation
    default_root: str | None
    how_to_get: str
    load: Callable[..., Dataset] = field(repr=False)
    options: tuple[str, ...] = ()


def default_root(name: str) -> Path:
    """Where dataset ``name`` is looked for when no root is given.

    ``$SPARSEWINO_DATA_DIR/<name>`` when that variable is set, else the spec's default
    (the Debian package directory for Fashion-MNIST, ``./data/<name>`` otherwise).
    """
    spec = dataset_spec(name)
    env = os.environ.get("SPARSEWINO_DATA_DIR")
    if env and spec.name != "fake":
        return Path(env) / spec.name
    return Path(spec.default_root or f"data/{spec.name}")


def _idx(dataset: str, how: str) -> Callable[..., Dataset]:
    def load(root: Path, split: str, classes: list[str] | None = None) -> Dataset:
        images, labels = load_idx_split(root, split, dataset, how)
        return TensorImageDataset(images, labels, classes or [str(i) for i in range(10)])
    return load


def _fashion(root: Path, split: str) -> Dataset:
    return _idx("Fashion-MNIST", DATASETS["fashion-mnist"].how_to_get)(root, split, FASHION_CLASSES)


def _cifar(variant: str) -> Callable[..., Dataset]:
    def load(root: Path, split: str) -> Dataset:
        images, labels, names = load_cifar_split(root, variant, split)
        count = 10 if variant == "cifar10" else 100
        return TensorImageDataset(images, labels, names or [str(i) for i in range(count)])
    return load


def _folder(root: Path, split: str, image_size: int = 256, classes: list[str] | None = None) -> Dataset:
    if classes is None and split == "test" and (root / "train").is_dir():
        # the training classes, in their order (listing the class folders, not every image)
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) or None
    return ImageFolderDataset(find_split_dir(root, split), image_size=image_size, classes=classes)


def _fake(root: Path, split: str, num_samples: int = 256, num_classes: int = 10, channels: int = 1,
          image_size: int = 28, seed: int = 0) -> Dataset:
    del root
    return fake_dataset(num_samples, num_classes, channels, image_size, seed, split)


_MNIST_HOW = ("Download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from the MNIST page into "
              "that directory, or pass --data-dir DIR / data.root in the recipe.")
DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", 1, 10, 28, (0.2860,), (0.3530,), Augmentation(crop_padding=2, flip=True),
        "/usr/share/datasets/fashion-mnist",
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, files in "
        "/usr/share/datasets/fashion-mnist), or download the four idx .gz files of "
        "zalandoresearch/fashion-mnist and pass their directory with --data-dir DIR.",
        _fashion),
    "mnist": DatasetSpec("mnist", 1, 10, 28, (0.1307,), (0.3081,), Augmentation(crop_padding=2),
                         None, _MNIST_HOW, _idx("MNIST", _MNIST_HOW)),
    "cifar10": DatasetSpec("cifar10", 3, 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           Augmentation(crop_padding=4, flip=True), None,
                           "Extract cifar-10-python.tar.gz there.", _cifar("cifar10")),
    "cifar100": DatasetSpec("cifar100", 3, 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            Augmentation(crop_padding=4, flip=True), None,
                            "Extract cifar-100-python.tar.gz there.", _cifar("cifar100")),
    "imagenet": DatasetSpec("imagenet", 3, 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                            Augmentation(crop_size=224, flip=True), None,
                            "Put the images in root/train/<class>/ and root/val/<class>/.",
                            _folder, ("image_size", "classes")),
    "fake": DatasetSpec("fake", 1, 10, 28, (0.5,), (0.25,), Augmentation(crop_padding=2), None,
                        "The fake dataset is generated, nothing to download.", _fake,
                        ("num_samples", "num_classes", "channels", "image_size", "seed")),
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100", "cifar_100": "cifar100",
            "folder": "imagenet", "image-folder": "imagenet"}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name`` (case-insensitive; aliases like ``cifar-10`` allowed)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(available_datasets())}")
    return DATASETS[key]


def load_dataset(name: str, split: str = "train", root: str | Path | None = None,
                 **options: Any) -> Dataset:
    """Load a dataset split.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``imagenet`` (any image
            folder) or ``fake``.
        split: ``"train"`` or ``"test"`` (the validation folder for image folders).
        root: directory of the files; default :func:`default_root`.
        options: dataset-specific options (``image_size``/``classes`` for image folders;
            ``num_samples``, ``num_classes``, ``channels``, ``image_size``, ``seed`` for fake).

    Returns:
        A dataset with ``len()``, ``classes``, ``labels`` and ``get_batch(indices)`` returning
        uint8 images ``(B, C, H, W)`` and int64 labels.

    Raises:
        DatasetNotFoundError: files are missing (the message says where we looked and how
            to get them). DatasetError: files are corrupt.

    Examples:
        >>> train = load_dataset("fashion-mnist", "train")
        >>> len(train), train.images.shape
        (60000, torch.Size([60000, 1, 28, 28]))
    """
    spec = dataset_spec(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(f"dataset {spec.name!r} takes no option(s) {unknown}; "
                         f"allowed: {list(spec.options) or 'none'}")
    return spec.load(Path(root) if root is not None else default_root(spec.name), split, **options)
