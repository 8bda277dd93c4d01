"""idx(.gz) reading of MNIST-like files written by the tests in the real format."""
import numpy as np
import pytest
import torch

from sparsewino.data import DatasetError, DatasetNotFoundError, load_dataset, read_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, dtype, compress, write_idx):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5) if dtype != np.uint8 \
        else np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / ("x.idx" + (".gz" if compress else ""))
    write_idx(path, array, compress)
    result = read_idx(path)
    assert result.shape == (2, 3, 5)
    np.testing.assert_array_equal(result.numpy(), array)


@pytest.mark.parametrize("compress,dotted", [(True, False), (False, False), (False, True)])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_load_mnist_like(tmp_path, name, compress, dotted, write_mnist):
    data = write_mnist(tmp_path, compress=compress, dotted=dotted)
    train = load_dataset(name, "train", root=tmp_path)
    test = load_dataset(name, "test", root=tmp_path)
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(train.images[:, 0].numpy(), data["train"][0])
    np.testing.assert_array_equal(test.labels.numpy(), data["t10k"][1])
    assert train.labels.dtype == torch.int64 and len(train.classes) == 10


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", "train", root=tmp_path / "absent")
    message = str(info.value)
    assert str(tmp_path / "absent") in message and "apt-get install dataset-fashion-mnist" in message


def test_missing_labels_only(tmp_path, write_mnist):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", "test", root=tmp_path)


def test_truncated_gzip_is_reported(tmp_path, write_mnist):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        load_dataset("fashion-mnist", "train", root=tmp_path)


def test_truncated_payload_and_bad_magic(tmp_path, write_idx):
    path = tmp_path / "a-idx3-ubyte"
    write_idx(path, np.zeros((3, 4, 4), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match="not an idx file"):
        read_idx(path)


def test_mismatched_counts(tmp_path, write_mnist, write_idx):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), compress=True)
    with pytest.raises(DatasetError, match="expected"):
        load_dataset("mnist", "train", root=tmp_path)


def test_real_fashion_mnist_when_installed():
    from pathlib import Path
    root = Path("/usr/share/datasets/fashion-mnist")
    if not (root / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed")
    test = load_dataset("fashion-mnist", "test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
