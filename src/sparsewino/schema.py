"""A small schema layer: build typed dataclasses from plain mappings with clear error messages.

A foundation module (it imports only :mod:`sparsewino.errors`): the recipe schema, the training
config and the CLI build on it. ``sparsewino.train.schema`` re-exports it for old imports.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

from .errors import UserError

__all__ = ["ConfigError", "OutOfRangeError", "from_dict", "to_dict", "check_range", "unknown_key_error",
           "NO_RESULT_CHANGE"]

#: Metadata of a config field whose value does not change a run's results (data location,
#: threads, checkpoint frequency...): a run's identity ignores it, so changing it resumes the run.
NO_RESULT_CHANGE = {"identity": False}

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration (recipe, stage, option) is invalid; the message names the offending key."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: must be {_type_name(tp)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        real = [o for o in options if o is not type(None)]
        if value is not None and len(real) == 1:
            return _convert(value, real[0], where)         # its own, more precise message
        for option in options:
            try:
                return _convert(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: must be {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: must be null, got {value!r}")
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a mapping, got {type(value).__name__} {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: must be a {_type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: must have {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        return {_convert(k, key_tp, f"{where} key"): _convert(v, value_tp, f"{where}.{k}")
                for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: must be {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and types.

    Unknown keys, wrong types and missing required keys raise :class:`ConfigError` naming the
    full path (``stages[2].optimizer.lr``) and, for typos, the closest allowed key. After the
    fields are set, the dataclass's ``__post_init__`` may check ranges (raise ``ValueError``;
    it is re-raised as ``ConfigError`` with the path).

    Examples:
        >>> @dataclasses.dataclass
        ... class Opt:
        ...     lr: float = 0.1
        >>> from_dict(Opt, {"lr": 1})
        Opt(lr=1.0)
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise unknown_key_error(unknown[0], list(fields), where)
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _convert(data[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as exc:                  # __post_init__ range checks
        raise ConfigError(f"{where}: {exc}") from None


def unknown_key_error(key: Any, allowed: list[str], where: str) -> ConfigError:
    """The error for an unknown ``key``: names the closest allowed key and lists them all."""
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint} (allowed: {', '.join(allowed)})")


def to_dict(obj: Any) -> Any:
    """Plain dict/list/scalars of a (nested) dataclass, for YAML/JSON and checkpoints."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


class OutOfRangeError(ValueError):
    """A number outside its allowed range (:func:`check_range`): ``"<key> <requirement>"``.

    Attributes:
        key: the field (``"lr"``), so a caller can name it its own way (the CLI says ``--lr``)
            without reading the message.
        requirement: the rest of the message (``"must be > 0, got -1"``).
    """

    def __init__(self, key: str, requirement: str) -> None:
        super().__init__(f"{key} {requirement}")
        self.key, self.requirement = key, requirement


def check_range(name: str, value: float | None, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise :class:`OutOfRangeError` (a ``ValueError``) when ``value`` is outside ``[low, high]``
    (open ends on request).

    NaN and infinities are always refused (``--lr nan`` compares false with every bound).

    Examples:
        >>> check_range("lr", float("nan"), 0)
        Traceback (most recent call last):
        ...
        sparsewino.schema.OutOfRangeError: lr must be a finite number, got nan
    """
    if value is None:
        return
    if not math.isfinite(value):
        raise OutOfRangeError(name, f"must be a finite number, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise OutOfRangeError(name, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise OutOfRangeError(name, f"must be {'<' if high_open else '<='} {high}, got {value}")
