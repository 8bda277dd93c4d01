"""Model registry: build any model by name with configurable input channels and classes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

__all__ = ["register_model", "create_model", "available_models", "model_entry", "ModelEntry"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, the input size it was designed for, and a summary."""

    name: str
    builder: Callable[..., nn.Module]
    input_size: int
    description: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, input_size: int, description: str
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``fn(in_channels=..., num_classes=..., **kwargs)`` to the registry."""
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, builder, input_size, description)
        return builder
    return decorate


def available_models() -> list[str]:
    """Registered model names."""
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name`` (``-`` and ``_`` are interchangeable)."""
    key = name.replace("-", "_").lower()
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(available_models())}")
    return _MODELS[key]


def create_model(name: str, in_channels: int = 3, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: e.g. ``small_vgg``, ``vgg_nagadomi``, ``convpool_cnn_c``, ``resnet18``,
            ``resnet18_max``, ``resnet18_cifar``, ``resnet18_cifar_max``.
        in_channels: image channels (1 for (Fashion-)MNIST, 3 for CIFAR/ImageNet).
        num_classes: outputs of the classifier.
        kwargs: model-specific options (see each builder's docstring).

    Returns:
        The freshly initialised model.

    Examples:
        >>> model = create_model("small_vgg", in_channels=1, num_classes=10)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    entry = model_entry(name)
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
    try:
        return entry.builder(in_channels=in_channels, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise ValueError(f"model {entry.name!r}: {exc}") from None
        raise
