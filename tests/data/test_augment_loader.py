"""Batch augmentation, normalisation and the deterministic, rank-aware BatchLoader."""
import pytest
import torch

from sparsewino.data import (
    Augmentation,
    BatchLoader,
    Normalize,
    center_crop,
    dataset_spec,
    fake_dataset,
    random_crop,
    random_flip,
)


def reference_crop(images, size, padding, top, left):
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    return torch.stack([padded[i, :, t:t + size[0], l:l + size[1]]
                        for i, (t, l) in enumerate(zip(top.tolist(), left.tolist()))])


@pytest.mark.parametrize("shape,size,padding", [((5, 3, 8, 8), (8, 8), 2), ((2, 1, 7, 9), (4, 5), 0),
                                                ((1, 2, 1, 1), (1, 1), 1)])
def test_random_crop_matches_slicing(shape, size, padding):
    images = torch.randint(0, 256, shape, dtype=torch.uint8)
    out = random_crop(images, size, padding, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    full = (shape[2] + 2 * padding, shape[3] + 2 * padding)
    top = torch.randint(0, full[0] - size[0] + 1, (shape[0],), generator=gen)
    left = torch.randint(0, full[1] - size[1] + 1, (shape[0],), generator=gen)
    assert torch.equal(out, reference_crop(images, size, padding, top, left))


def test_random_crop_too_big():
    with pytest.raises(ValueError, match="smaller than the crop"):
        random_crop(torch.zeros(1, 1, 4, 4), 9, 2, torch.Generator())


def test_flip_and_center_crop():
    images = torch.arange(2 * 1 * 2 * 3).reshape(2, 1, 2, 3)
    flipped = random_flip(images, torch.Generator(), p=1.0)
    assert torch.equal(flipped, images.flip(-1))
    assert torch.equal(random_flip(images, torch.Generator(), p=0.0), images)
    assert torch.equal(center_crop(torch.arange(25).reshape(1, 1, 5, 5), 3)[0, 0, 0], torch.tensor([6, 7, 8]))


def test_normalize():
    norm = Normalize((0.5, 0.25), (0.5, 0.25))
    out = norm(torch.full((1, 2, 2, 2), 255, dtype=torch.uint8))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError, match="channels"):
        norm(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def make_loader(dataset, **kw):
    spec = dataset_spec("fake")
    return BatchLoader(dataset, kw.pop("batch_size", 8), Normalize(spec.mean, spec.std), **kw)


def test_loader_is_deterministic_and_resumable():
    data = fake_dataset(50)
    loader = make_loader(data, shuffle=True, augmentation=Augmentation(2, flip=True), seed=5)
    first = list(loader.epoch(3))
    again = list(loader.epoch(3))
    resumed = list(loader.epoch(3, start=4))
    assert len(first) == len(loader) == 7
    for (a, la), (b, lb) in zip(first, again):
        assert torch.equal(a, b) and torch.equal(la, lb)
    for (a, la), (b, lb) in zip(first[4:], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other = list(loader.epoch(4))
    assert not torch.equal(first[0][1], other[0][1])          # reshuffled each epoch


def test_loader_shards_cover_dataset_once_in_eval():
    data = fake_dataset(21)
    seen = []
    for rank in range(3):
        loader = make_loader(data, rank=rank, world_size=3, batch_size=4)
        seen += loader.indices(0).tolist()
        assert sum(len(y) for _, y in loader.epoch(0)) == len(loader.indices(0))
    assert sorted(seen) == list(range(21))


def test_loader_training_shards_disjoint_and_drop_last():
    data = fake_dataset(40)
    shards = [make_loader(data, shuffle=True, rank=r, world_size=2, drop_last=True, batch_size=6)
              for r in range(2)]
    a, b = (set(s.indices(1).tolist()) for s in shards)
    assert not a & b and len(a | b) == 40
    assert len(shards[0]) == 3 and all(len(y) == 6 for _, y in shards[0].epoch(1))


def test_loader_workers_give_same_batches():
    data = fake_dataset(20)
    plain = list(make_loader(data, shuffle=True, seed=1).epoch(0, start=1))
    workers = list(make_loader(data, shuffle=True, seed=1, num_workers=1).epoch(0, start=1))
    assert len(plain) == len(workers) == 2
    for (a, la), (b, lb) in zip(plain, workers):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_fake_dataset_shapes_and_errors():
    data = fake_dataset(9, num_classes=3, channels=3, image_size=5, split="test")
    assert data.images.shape == (9, 3, 5, 5) and data.labels.max() < 3
    with pytest.raises(ValueError):
        fake_dataset(0)
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_spec("imagenet22k")
