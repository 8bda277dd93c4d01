"""Datasets (Fashion-MNIST/MNIST idx, CIFAR pickles, image folders), augmentation and loaders."""
from .augment import Augmentation, Normalize, center_crop, random_crop, random_flip
from .cifar import load_cifar_split
from .errors import DatasetError, DatasetNotFoundError
from .folder import ImageFolderDataset
from .idx import read_idx
from .loader import BatchLoader
from .registry import (
                       DATASETS,
                       DatasetSpec,
                       available_datasets,
                       dataset_spec,
                       default_root,
                       load_dataset,
                       register_dataset,
)
from .tensor_dataset import TensorImageDataset, fake_dataset

__all__ = ["Augmentation", "Normalize", "random_crop", "random_flip", "center_crop",
           "load_cifar_split", "DatasetError", "DatasetNotFoundError", "ImageFolderDataset",
           "read_idx", "BatchLoader", "DATASETS", "DatasetSpec", "available_datasets",
           "dataset_spec", "default_root", "load_dataset", "register_dataset", "TensorImageDataset",
           "fake_dataset"]
