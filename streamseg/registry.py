"""A tiny name -> factory registry, extended by Python entry points.

Third-party packages add sources and sinks by declaring entry points in the
``streamseg.sources`` / ``streamseg.sinks`` groups; they are looked up only
when a name is not built in, so a broken plugin never breaks the built-ins.
"""

from __future__ import annotations

import difflib
import logging
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from streamseg.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a kind name (``"video"``, ``"rtsp"``, ...) to a factory."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@SINKS.register("video")``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.group}: {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        """Built-in and installed plugin names."""
        plugins = {ep.name for ep in entry_points(group=self.group)}
        return sorted(set(self._factories) | plugins)

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name``; an unknown name is a ConfigError naming the closest one."""
        if name in self._factories:
            return self._factories[name]
        for ep in entry_points(group=self.group):
            if ep.name == name:
                factory = ep.load()
                self._factories[name] = factory
                log.debug("loaded %s plugin %r from %s", self.group, name, ep.value)
                return factory
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {self.group.split('.')[-1][:-1]} kind {name!r}{hint} (known: {', '.join(names)})")
