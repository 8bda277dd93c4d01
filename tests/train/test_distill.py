"""Knowledge distillation: the student learns the teacher's outputs; recipes find the dense teacher."""
import sys
from pathlib import Path

import pytest
import torch

from sparsewino.recipes import load_recipe, run_recipe
from sparsewino.train import ConfigError, DistillConfig, evaluate, fit

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config, tiny_loaders, tiny_model  # noqa: E402


def _agreement(a, b, loader):
    a.eval(), b.eval()
    same = total = 0
    with torch.no_grad():
        for images, _ in loader.epoch(0):
            same += int((a(images).argmax(1) == b(images).argmax(1)).sum())
            total += len(images)
    return same / total


def test_pure_distillation_copies_the_teacher_not_the_labels():
    train, test = tiny_loaders(samples=128)
    teacher = tiny_model(seed=1, masked=False)
    fit(teacher, train, tiny_config(epochs=4, checkpoint_every=None))
    with torch.no_grad():                              # a teacher that answers "class + 1"
        teacher.classifier[-1].weight.copy_(teacher.classifier[-1].weight.roll(1, 0))
        teacher.classifier[-1].bias.copy_(teacher.classifier[-1].bias.roll(1, 0))
    student, plain = tiny_model(seed=2), tiny_model(seed=2)
    config = tiny_config(epochs=4, checkpoint_every=None, distill=DistillConfig(weight=1.0, temperature=2.0))
    fit(student, train, config, teacher=teacher)
    fit(plain, train, tiny_config(epochs=4, checkpoint_every=None))
    assert _agreement(student, teacher, test) > 0.7 > _agreement(plain, teacher, test)
    assert evaluate(plain, test)["accuracy"] > evaluate(student, test)["accuracy"]
    with pytest.raises(ValueError, match="needs a teacher"):
        fit(tiny_model(), train, config)
    with pytest.raises(ValueError, match="weight"):
        DistillConfig(weight=1.5)


def test_recipes_distil_from_the_dense_model_and_refuse_a_missing_one(tmp_path):
    base = ["model.args={widths: [4, M, 4]}", "stages=[{stage: train, name: baseline, epochs: 0.5}, "
            "{stage: prune, name: p, method: magnitude, amount: 0.5, finetune: {epochs: 0.5, "
            "distill: {weight: 0.7}}}]"]
    recipe = load_recipe("fashion_mnist_magnitude", base, smoke=True)
    assert recipe.stages[1].finetune.distill == DistillConfig(weight=0.7, temperature=4.0)
    result = run_recipe(recipe, tmp_path / "run", progress=False, log=lambda m: None)
    assert [r["stage"] for r in result.rows] == ["baseline", "p"]
    with pytest.raises(ConfigError, match="comes before it"):
        load_recipe("fashion_mnist_magnitude", ["stages.baseline.distill={weight: 0.5}"])
    with pytest.raises(ConfigError, match="no dense model to learn from"):
        load_recipe("fashion_mnist_magnitude", [
            "stages=[{stage: prune, name: p, method: magnitude, amount: 0.5, finetune: "
            "{epochs: 0.5, distill: {}}}]"])
