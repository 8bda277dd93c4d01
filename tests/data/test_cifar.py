"""CIFAR-10/100 python-pickle archives written by the tests in the real layout."""
import pickle

import numpy as np
import pytest
import torch

from sparsewino.data import DatasetError, DatasetNotFoundError, load_dataset


def write_cifar(root, variant="cifar10", per_batch=4, seed=0, bytes_keys=False):
    rng = np.random.default_rng(seed)
    if variant == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        label_key, meta_name, meta = "labels", "batches.meta", {"label_names": [f"c{i}" for i in range(10)]}
        classes = 10
    else:
        folder = root / "cifar-100-python"
        files = {"train": ["train"], "test": ["test"]}
        label_key, meta_name = "fine_labels", "meta"
        meta = {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": ["x"] * 20}
        classes = 100
    folder.mkdir(parents=True)
    written = {}
    for split, names in files.items():
        chunks = []
        for name in names:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, classes, per_batch)]
            batch = {"data": data, label_key: labels, "batch_label": name}
            if bytes_keys:
                batch = {k.encode(): v for k, v in batch.items()}
            with open(folder / name, "wb") as handle:
                pickle.dump(batch, handle, protocol=2)
            chunks.append((data, labels))
        written[split] = chunks
    with open(folder / meta_name, "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return folder, written


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
@pytest.mark.parametrize("bytes_keys", [False, True])
def test_load_cifar(tmp_path, variant, bytes_keys):
    folder, written = write_cifar(tmp_path, variant, bytes_keys=bytes_keys)
    train = load_dataset(variant, "train", root=tmp_path)
    test = load_dataset(variant.replace("cifar", "cifar-"), "test", root=folder)  # alias + direct folder
    expected = np.concatenate([d for d, _ in written["train"]]).reshape(-1, 3, 32, 32)
    assert train.images.shape == (len(expected), 3, 32, 32) and train.images.dtype == torch.uint8
    np.testing.assert_array_equal(train.images.numpy(), expected)
    assert test.labels.tolist() == written["test"][0][1]
    assert train.classes[1] == ("c1" if variant == "cifar10" else "f1")


def test_missing_cifar(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_corrupt_cifar_batch(tmp_path):
    folder, _ = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    folder, _ = write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": Evil(), "labels": []}, handle, protocol=2)
    with pytest.raises(DatasetError, match="refusing to load global .*print"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_wrong_shape_cifar(tmp_path):
    folder, _ = write_cifar(tmp_path)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, handle, protocol=2)
    with pytest.raises(DatasetError, match=r"\(N, 3072\)"):
        load_dataset("cifar10", "test", root=tmp_path)
