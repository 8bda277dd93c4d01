"""Model registry: build any model by name with configurable input channels and classes."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..errors import UnknownNameError
from ..registry import Registry

__all__ = ["register_model", "create_model", "available_models", "model_entry", "ModelEntry",
           "MODELS", "model_options"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, the input size it was designed for, and a summary."""

    name: str
    builder: Callable[..., nn.Module]
    input_size: int
    description: str


#: Every model buildable by name (``-`` and ``_`` are interchangeable in lookups).
MODELS: Registry[ModelEntry] = Registry("model", normalize=lambda name: name.replace("-", "_").lower())


def register_model(name: str, input_size: int, description: str
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``fn(in_channels=..., num_classes=..., **kwargs)`` to :data:`MODELS`."""
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(ModelEntry(name, builder, input_size, description))
        return builder
    return decorate


def available_models() -> list[str]:
    """Registered model names."""
    return MODELS.names()


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name`` (``-`` and ``_`` are interchangeable).

    Raises:
        UnknownNameError: no such model (the message lists them).
    """
    return MODELS.lookup(name)


def model_options(name: str) -> list[str] | None:
    """The options ``create_model(name, **options)`` accepts (``None`` if any keyword goes)."""
    parameters = inspect.signature(model_entry(name).builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.name not in ("in_channels", "num_classes")
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


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
    allowed = model_options(entry.name)
    unknown = [key for key in kwargs if allowed is not None and key not in allowed]
    if unknown:
        raise UnknownNameError(f"model {entry.name!r}: unexpected keyword argument(s) {unknown}; its "
                               f"options: {', '.join(allowed) or 'none'}")
    return entry.builder(in_channels=in_channels, num_classes=num_classes, **kwargs)
