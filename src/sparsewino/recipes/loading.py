"""Find, read and override recipes: YAML files or the recipes bundled with sparsewino."""
from __future__ import annotations

import copy
import inspect
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..schema import ConfigError
from .schema import Recipe, parse_recipe

__all__ = ["bundled_recipes", "find_recipe", "load_recipe", "read_recipe_data", "apply_overrides", "apply_values",
           "smoke_variant", "SMOKE_WIDTH"]

#: Base width of models in smoke runs (their own default is 64).
SMOKE_WIDTH = 8


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("recipes need PyYAML: pip install 'sparsewino[pipeline]'") from None
    return yaml


def bundled_recipes() -> dict[str, Path]:
    """Name -> path of every recipe shipped in the package (``sparsewino/recipes/*.yaml``)."""
    folder = resources.files("sparsewino.recipes")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or the name of a bundled recipe (``.yaml`` optional).

    Raises:
        FileNotFoundError: neither a file nor a bundled recipe; lists the bundled ones.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_recipes()
    key = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if key in bundled and len(path.parts) == 1:
        return bundled[key]
    raise FileNotFoundError(f"recipe {str(name_or_path)!r} is neither a file nor a bundled recipe; "
                            f"bundled: {', '.join(sorted(bundled))}")


def read_recipe_data(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML recipe file (clear error on YAML syntax errors)."""
    yaml = _yaml()
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc, text)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping with name, data, model and stages")
    return data


def _yaml_problem(exc: Exception, text: str) -> str:
    """``line 3, column 7 ('data: {dataset: mnist'): expected ',' or '}', but got ':'``."""
    mark = getattr(exc, "problem_mark", None)
    problem = "; ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    problem = problem or str(exc).splitlines()[0]
    if mark is None:
        return problem
    lines = text.splitlines()
    quoted = f" ({lines[mark.line].strip()!r})" if 0 <= mark.line < len(lines) else ""
    return f"line {mark.line + 1}, column {mark.column + 1}{quoted}: {problem}"


def _step(node: Any, key: str, path: str) -> tuple[Any, Any]:
    """Container and key for one path element (list index, or stage name inside stages)."""
    if isinstance(node, list):
        if key.lstrip("-").isdigit():
            index = int(key)
            if not -len(node) <= index < len(node):
                raise ConfigError(f"--set {path}: index {index} out of range ({len(node)} items)")
            return node, index
        for i, item in enumerate(node):
            if isinstance(item, Mapping) and (item.get("name") or item.get("stage")) == key:
                return node, i
        raise ConfigError(f"--set {path}: no item named {key!r}")
    if isinstance(node, dict):
        return node, key
    raise ConfigError(f"--set {path}: cannot descend into {type(node).__name__} at {key!r}")


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a recipe mapping.

    Path elements are mapping keys, list indices, or stage names inside ``stages``
    (``stages.baseline.epochs=1``). Missing mapping keys are created (validation catches typos).

    Examples:
        >>> apply_overrides({"data": {"dataset": "mnist"}}, ["data.root=/tmp/x"])
        {'data': {'dataset': 'mnist', 'root': '/tmp/x'}}
    """
    yaml = _yaml()
    values: list[tuple[str, Any]] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE")
        path, _, text = item.partition("=")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        values.append((path, value))
    return apply_values(data, values)


def apply_values(data: Mapping[str, Any], values: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Set ``(key.path, value)`` pairs (values already parsed) in a copy of a recipe mapping.

    Paths address keys as in :func:`apply_overrides`.

    Examples:
        >>> apply_values({"stages": [{"stage": "train", "name": "t", "epochs": 2}]},
        ...              [("stages.t.epochs", 1)])
        {'stages': [{'stage': 'train', 'name': 't', 'epochs': 1}]}
    """
    result = copy.deepcopy(dict(data))
    for path, value in values:
        keys = [k for k in str(path).strip().split(".") if k]
        if not keys:
            raise ConfigError(f"--set {path!r}: empty key")
        node: Any = result
        for key in keys[:-1]:
            container, slot = _step(node, key, path)
            if isinstance(container, dict) and slot not in container:
                container[slot] = {}
            node = container[slot]
        container, slot = _step(node, keys[-1], path)
        container[slot] = copy.deepcopy(value)
    return result


def load_recipe(name_or_path: str | Path, overrides: Iterable[str] = (), smoke: bool = False) -> Recipe:
    """Read, override and validate a recipe.

    Args:
        name_or_path: a YAML file or a bundled recipe name (see :func:`bundled_recipes`).
        overrides: ``KEY.PATH=VALUE`` strings (see :func:`apply_overrides`).
        smoke: run on fake data for a few steps (see :func:`smoke_variant`), after overrides.

    Returns:
        The validated :class:`Recipe`.

    Examples:
        >>> recipe = load_recipe("fashion_mnist_spatial_winograd", ["stages.baseline.epochs=1"])
    """
    path = find_recipe(name_or_path)
    data = apply_overrides(read_recipe_data(path), overrides)
    if smoke:
        data = smoke_variant(data)
    return parse_recipe(data, source=str(path))


def smoke_variant(data: Mapping[str, Any], samples: int = 64, batch_size: int = 16,
                  steps: int = 2) -> dict[str, Any]:
    """A copy of a recipe mapping that runs in seconds on fake data of the same shape.

    The dataset becomes ``fake`` with the real one's channels, classes and image size (32 for
    ImageNet; clips of the same frames for clip datasets), every training run lasts ``steps``
    optimizer steps, particle filters and benchmarks shrink, and models with a ``width`` option
    (ResNet-18, VGG-nagadomi) get ``width`` :data:`SMOKE_WIDTH` unless the recipe sets one: the same layers and stages,
    narrower (pruning a full ResNet-18 alone takes a minute). Used by
    ``sparsewino run RECIPE --smoke`` to check a long recipe end to end before spending hours
    on it, and by the tests.
    """
    from ..data.registry import dataset_spec
    result = copy.deepcopy(dict(data))
    original = dict(result.get("data") or {})
    spec = dataset_spec(str(original.get("dataset", "fake")))
    image_size = 32 if spec.name == "imagenet" else spec.image_size
    result["data"] = {"dataset": "fake", "batch_size": batch_size, "eval_batch_size": 32,
                      "options": {"num_samples": samples, "num_classes": spec.num_classes,
                                  "channels": spec.in_channels, "image_size": image_size}}
    if spec.frames is not None:                       # clip datasets: fake clips
        result["data"]["options"]["frames"] = spec.frames
    if original.get("validation"):
        result["data"]["validation"] = 16
    train_images = samples - result["data"].get("validation", 0)
    epochs = steps * batch_size / train_images

    def shrink(config: dict[str, Any]) -> dict[str, Any]:
        old = float(config.get("epochs", 1.0))
        config.update(epochs=epochs, batch_size=batch_size, checkpoint_every=None)
        schedule = config.get("schedule")
        if isinstance(schedule, dict) and schedule.get("milestones"):
            schedule["milestones"] = [m * epochs / old for m in schedule["milestones"]]
        if isinstance(schedule, dict) and "step_epochs" in schedule:
            schedule["step_epochs"] = schedule["step_epochs"] * epochs / old
        if isinstance(schedule, dict) and "warmup_epochs" in schedule:
            schedule["warmup_epochs"] = 0.0
        return config

    for stage in result.get("stages") or []:
        if not isinstance(stage, dict):
            continue
        if stage.get("stage") in ("train", "finetune"):
            shrink(stage)
        if isinstance(stage.get("finetune"), dict):
            old = float(stage["finetune"].get("epochs", 1.0))
            shrink(stage["finetune"])
            if isinstance(stage.get("gradual"), dict):
                for key in ("begin", "end"):
                    if key in stage["gradual"]:
                        stage["gradual"][key] = stage["gradual"][key] * epochs / old
                stage["gradual"]["every_steps"] = 1
        if stage.get("importance") == "particle_filter":
            stage.update(particles=4, iterations=1)
        if stage.get("stage") == "benchmark":
            stage.update(batch_size=4, warmup=0, repeats=1)
    model = result.get("model")
    if isinstance(model, dict) and _has_width_option(model.get("name")):
        args = dict(model.get("args") or {})
        args.setdefault("width", SMOKE_WIDTH)
        result["model"] = {**model, "args": args}
    result["name"] = f"{result.get('name', 'recipe')}-smoke"
    return result


def _has_width_option(name: Any) -> bool:
    from ..models import model_entry
    try:
        builder = model_entry(str(name)).builder
    except (KeyError, ValueError):
        return False                                  # validation names the unknown model later
    return "width" in inspect.signature(builder).parameters
