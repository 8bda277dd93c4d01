"""Registry: the one shape of every extension point (pruning methods, layer kinds, datasets, models).

Each extension point keeps its entries (frozen dataclasses with at least ``name`` and
``description``) in one :class:`Registry`. The recipe schema, the runner, the CLI's choices
and help, and the docs tables are all read from these registries, so adding an entry is one
``register(...)`` call in the file that defines it. This module depends on nothing else in the
package, so every layer may use it.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, Mapping, Protocol, TypeVar

from .errors import UnknownNameError

__all__ = ["Registry", "Entry"]


class Entry(Protocol):
    """What a registry entry provides."""

    name: str
    description: str


T = TypeVar("T", bound=Entry)


def _lower(name: str) -> str:
    return name.lower()


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind, looked up by name or alias with a clear error for unknown names.

    Args:
        kind: what the entries are, for messages (``"pruning method"``, ``"dataset"``).
        normalize: maps a user-typed name to its key (default: lower case).

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Colour:
        ...     name: str
        ...     description: str
        >>> colours = Registry("colour")
        >>> colours.register(Colour("red", "warm"), aliases=("rouge",)).name
        'red'
        >>> colours.lookup("ROUGE").description, colours.names()
        ('warm', ['red'])
        >>> colours.lookup("blue")
        Traceback (most recent call last):
        ...
        sparsewino.errors.UnknownNameError: unknown colour 'blue'; choose one of red
    """

    def __init__(self, kind: str, normalize: Callable[[str], str] = _lower) -> None:
        self.kind = kind
        self._normalize = normalize
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, entry: T, aliases: tuple[str, ...] = ()) -> T:
        """Add ``entry`` (and alternative spellings); a name already taken is an error.

        Returns:
            ``entry``, so a module can write ``SPEC = REGISTRY.register(Spec(...))``.
        """
        key = self._normalize(entry.name)
        if key != entry.name:
            raise ValueError(f"{self.kind} name {entry.name!r} is not in normal form ({key!r})")
        if key in self._entries or key in self._aliases:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        for alias in aliases:
            alias_key = self._normalize(alias)
            if alias_key in self._entries or alias_key in self._aliases:
                raise ValueError(f"{self.kind} alias {alias!r} is already taken")
            self._aliases[alias_key] = key
        self._entries[key] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove the entry called exactly ``name`` (and its aliases); returns it."""
        entry = self._entries.pop(name)
        self._aliases = {alias: key for alias, key in self._aliases.items() if key != name}
        return entry

    def lookup(self, name: str) -> T:
        """The entry called ``name`` (normalised; aliases allowed).

        Raises:
            UnknownNameError: no such entry; the message lists the registered names.
        """
        key = self._normalize(str(name))
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of "
                                   f"{', '.join(self.names())}")
        return self._entries[key]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
