"""A recipe on an ImageNet-style image folder (real image files): training, random/centre crops, evaluation."""
import numpy as np
import pytest

from sparsewino.recipes import parse_recipe, run_recipe

Image = pytest.importorskip("PIL.Image")


def test_imagenet_layout_recipe(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("n01", "n02", "n03"):
            folder = tmp_path / "imagenet" / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    recipe = parse_recipe({
        "name": "folder", "model": {"name": "resnet18_max", "args": {"width": 4}},
        "data": {"dataset": "imagenet", "root": str(tmp_path / "imagenet"), "batch_size": 4,
                 "eval_batch_size": 5, "options": {"image_size": 20}},
        "stages": [{"stage": "train", "name": "t", "epochs": 1},
                   {"stage": "prune", "name": "p", "method": "spatial_winograd", "amount": 0.5},
                   {"stage": "evaluate", "name": "e"}]})
    result = run_recipe(recipe, tmp_path / "run", progress=False, log=lambda m: None)
    assert [r["kind"] for r in result.rows] == ["train", "prune", "evaluate"]
    assert result.rows[-1]["accuracy"] in {k / 12 for k in range(13)}   # all 12 validation images
    assert result.rows[1]["winograd_sparsity"] == pytest.approx(0.5, abs=0.02)
    import torch
    checkpoint = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert checkpoint["input_shape"] == [1, 3, 20, 20] and checkpoint["architecture"]["num_classes"] == 3
