"""Dataset registry: names, shapes, statistics, default locations and how to load each."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from ..errors import UnknownNameError
from ..registry import Registry
from .augment import Augmentation
from .cifar import load_cifar_split
from .clip_folder import load_clip_folder
from .folder import ImageFolderDataset, find_split_dir
from .idx import load_idx_split
from .moving import moving_fashion_mnist
from .tensor_dataset import TensorImageDataset, fake_dataset

__all__ = ["DatasetSpec", "DATASETS", "register_dataset", "dataset_spec", "load_dataset",
           "available_datasets", "default_root"]

Dataset = Union[TensorImageDataset, ImageFolderDataset]

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a dataset before loading it.

    ``description`` says what files it reads (for the docs); ``how_to_get`` is shown when they
    are missing; ``load(root, split, **options)`` returns the dataset; ``options`` lists the
    dataset-specific options ``load`` takes. ``frames`` is set for clip datasets (samples
    ``(C, T, H, W)``, for 3-D models): the default number of frames; their real shape and
    classes are read from the loaded data.
    """

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
    description: str = ""
    frames: int | None = None


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
          image_size: int = 28, seed: int = 0, frames: int | None = None) -> Dataset:
    del root
    return fake_dataset(num_samples, num_classes, channels, image_size, seed, split, frames=frames)


def _moving(motion: bool) -> Callable[..., Dataset]:
    def load(root: Path, split: str, frames: int = 16, image_size: int = 32,
             num_samples: int | None = None, seed: int = 0, cache_dir: str | None = None) -> Dataset:
        return moving_fashion_mnist(root, split, frames=frames, image_size=image_size,
                                    num_samples=num_samples, seed=seed, motion=motion,
                                    cache_dir=cache_dir, class_names=FASHION_CLASSES,
                                    how_to_get=DATASETS["fashion-mnist"].how_to_get)
    return load


def _clip_folder(root: Path, split: str, classes: list[str] | None = None) -> Dataset:
    return load_clip_folder(root, split, classes)


_MNIST_HOW = ("Download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from the MNIST page into "
              "that directory, or pass --data-dir DIR / data.root in the recipe.")

#: Every dataset loadable by name (case-insensitive; aliases like ``cifar-10`` allowed).
DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec, aliases: tuple[str, ...] = ()) -> DatasetSpec:
    """Add ``spec`` (and other spellings of its name) to :data:`DATASETS` and return it."""
    return DATASETS.register(spec, aliases)


register_dataset(DatasetSpec(
    "fashion-mnist", 1, 10, 28, (0.2860,), (0.3530,), Augmentation(crop_padding=2, flip=True),
    "/usr/share/datasets/fashion-mnist",
    "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, files in "
    "/usr/share/datasets/fashion-mnist), or download the four idx .gz files of "
    "zalandoresearch/fashion-mnist and pass their directory with --data-dir DIR.",
    _fashion, description="the four idx files, `.gz` or not"),
    aliases=("fashion_mnist", "fashionmnist", "fmnist"))
register_dataset(DatasetSpec(
    "mnist", 1, 10, 28, (0.1307,), (0.3081,), Augmentation(crop_padding=2), None, _MNIST_HOW,
    _idx("MNIST", _MNIST_HOW), description="idx files (also `train-images.idx3-ubyte` spelling)"))


def _register_cifar(classes: int, mean: tuple[float, ...], std: tuple[float, ...], archive_dir: str) -> None:
    register_dataset(DatasetSpec(
        f"cifar{classes}", 3, classes, 32, mean, std, Augmentation(crop_padding=4, flip=True), None,
        f"Extract cifar-{classes}-python.tar.gz there.", _cifar(f"cifar{classes}"),
        description=f"the python-pickle archive directory (`{archive_dir}`) or its parent"),
        aliases=(f"cifar-{classes}", f"cifar_{classes}"))


_register_cifar(10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar-10-batches-py")
_register_cifar(100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar-100-python")
register_dataset(DatasetSpec(
    "imagenet", 3, 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
    Augmentation(crop_size=224, flip=True), None,
    "Put the images in root/train/<class>/ and root/val/<class>/.", _folder, ("image_size", "classes"),
    description="image folders `root/train/<class>/*`, `root/val/<class>/*` (Pillow: "
                "`pip install 'sparsewino[images]'`)"),
    aliases=("folder", "image-folder"))
register_dataset(DatasetSpec(
    "fake", 1, 10, 28, (0.5,), (0.25,), Augmentation(crop_padding=2), None,
    "The fake dataset is generated, nothing to download.", _fake,
    ("num_samples", "num_classes", "channels", "image_size", "seed", "frames"),
    description="generated: one oriented grating per class + noise (drifting over `frames` "
                "frames: clips)"))
for name, classes, motion, what, aliases in (
        ("moving-fashion-mnist", 10, False, "clips generated (once, cached) from the Fashion-MNIST "
         "idx files: an item bouncing over 16 frames of 32×32; label: its class",
         ("moving_fashion_mnist", "moving-fmnist")),
        ("moving-fashion-mnist-motion", 20, True, "like `moving-fashion-mnist`, items moving right "
         "or left on a torus; label: class × direction (no single frame tells the direction)",
         ("moving_fashion_mnist_motion",))):
    register_dataset(DatasetSpec(
        name, 1, classes, 32, (0.0545,), (0.1824,), Augmentation(), "/usr/share/datasets/fashion-mnist",
        DATASETS["fashion-mnist"].how_to_get, _moving(motion),
        ("frames", "image_size", "num_samples", "seed", "cache_dir"), frames=16, description=what),
        aliases=aliases)
register_dataset(DatasetSpec(
    "clip-folder", 1, 2, 32, (0.5,), (0.25,), Augmentation(), None,
    "Put one uint8 .npy array of frames, (T, H, W) or (T, H, W, C), per clip in "
    "root/train/<class>/ and root/val/<class>/.", _clip_folder, ("classes",), frames=16,
    description="clip folders `root/train/<class>/*.npy`, `root/val/<class>/*.npy` (uint8 "
                "frames; shape and classes read from the files)"),
    aliases=("clips",))


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return DATASETS.names()


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name`` (case-insensitive; aliases like ``cifar-10`` allowed).

    Raises:
        UnknownNameError: no such dataset (the message lists them).
    """
    return DATASETS.lookup(name)


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
        uint8 images ``(B, C, H, W)`` (clips ``(B, C, T, H, W)`` for clip datasets) and int64
        labels.

    Raises:
        DatasetNotFoundError: files are missing (the message says where we looked and how
            to get them). DatasetError: files are corrupt.

    Examples:
        >>> train = load_dataset("fake", "train", num_samples=64, channels=3, image_size=32)
        >>> len(train), train.images.shape
        (64, torch.Size([64, 3, 32, 32]))
        >>> len(load_dataset("fashion-mnist", "train"))             # doctest: +SKIP
        60000
    """
    spec = dataset_spec(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise UnknownNameError(f"dataset {spec.name!r} takes no option(s) {unknown}; "
                               f"allowed: {list(spec.options) or 'none'}")
    return spec.load(Path(root) if root is not None else default_root(spec.name), split, **options)
