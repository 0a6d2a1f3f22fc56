"""A name-keyed registry with "did you mean" errors, shared by models, converters and runners."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

from edgederm.errors import EdgeDermError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; entries are registered by name, never looked up by position."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None):
        """Register ``entry`` under ``name``; usable as a decorator when ``entry`` is omitted."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add(entry) if entry is not None else add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise EdgeDermError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} Known: {', '.join(sorted(self._entries))}"

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def lazy(factory_path: str) -> Callable:
    """A callable that imports ``module:function`` only when called (keeps imports light)."""
    module_name, _, attr = factory_path.partition(":")

    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(module_name), attr)(*args, **kwargs)

    call.__qualname__ = factory_path
    return call
