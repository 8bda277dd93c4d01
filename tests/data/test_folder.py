"""ImageNet-style image folders written by the tests as real image files (Pillow)."""
import numpy as np
import pytest
import torch

from sparsewino.data import DatasetError, DatasetNotFoundError, ImageFolderDataset, load_dataset

Image = pytest.importorskip("PIL.Image")


def write_folder(root, classes=("cat", "dog", "eel"), per_class=2, size=(40, 30)):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                fmt = "png" if i % 2 == 0 else "jpg"
                Image.fromarray(array).save(folder / f"img{i}.{fmt}")


def test_load_image_folder(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    train = load_dataset("imagenet", "train", root=tmp_path, image_size=24)
    val = load_dataset("imagenet", "test", root=tmp_path, image_size=24)
    assert len(train) == 6 and train.classes == ["cat", "dog", "eel"]
    images, labels = train.get_batch(torch.tensor([0, 3, 5]))
    assert images.shape == (3, 3, 24, 24) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 1, 2]
    assert val.classes == train.classes and len(val) == 6


def test_png_pixels_survive_exactly(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    array = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(array).save(folder / "x.png")
    dataset = ImageFolderDataset(tmp_path, image_size=16)
    np.testing.assert_array_equal(dataset.load_image(0).permute(1, 2, 0).numpy(), array)


def test_grey_and_non_square(tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    Image.fromarray(np.full((10, 30), 7, np.uint8)).save(folder / "g.png")
    dataset = ImageFolderDataset(tmp_path, image_size=8, channels=1)
    image = dataset.load_image(0)
    assert image.shape == (1, 8, 8) and int(image.min()) == 7 == int(image.max())


def test_missing_split_and_corrupt_image(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="root/train/<class>"):
        load_dataset("imagenet", "train", root=tmp_path)
    write_folder(tmp_path)
    (tmp_path / "train" / "dog" / "img0.png").write_bytes(b"\x89PNG broken")
    dataset = load_dataset("imagenet", "train", root=tmp_path, image_size=8)
    with pytest.raises(DatasetError, match="img0.png"):
        dataset.get_batch(torch.arange(len(dataset)))


def test_unknown_option(tmp_path):
    with pytest.raises(ValueError, match="takes no option"):
        load_dataset("mnist", "train", root=tmp_path, image_size=3)
