"""``CallbackSink(fn)`` — hands every prediction to a Python function.

For library use (``stream(..., sinks=[CallbackSink(fn)])``); from the command
line, ``callback:package.module:function`` imports the function. An exception
raised by ``fn`` propagates out of ``write()`` unchanged, so the pipeline stops
the run with a stage error whose cause is the caller's own exception.
"""

from __future__ import annotations

import importlib
from typing import Callable

from streamseg.errors import ConfigError
from streamseg.sinks.base import BaseSink
from streamseg.types import Prediction

__all__ = ["CallbackSink", "callback_from_path"]


class CallbackSink(BaseSink):
    """Calls ``fn(prediction)`` for every prediction, in the sink's thread."""

    kind = "callback"

    def __init__(self, fn: Callable[[Prediction], object], *, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(f"CallbackSink needs a callable, got {type(fn).__name__}; pass a function")
        qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
        super().__init__(name or f"callback:{getattr(fn, '__module__', '?')}:{qualname}")
        self.fn = fn

    def _write(self, prediction: Prediction) -> bool:
        self.fn(prediction)
        return True


def callback_from_path(target: str) -> CallbackSink:
    """``"package.module:function"`` -> a CallbackSink calling that function (``callback:`` specs)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"callback target {target!r} must be MODULE:FUNCTION, e.g. callback:mypkg.hooks:on_mask")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"callback module {module_name!r} cannot be imported ({exc}); is it on PYTHONPATH?") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(
                f"{module_name!r} has no attribute {attr!r}; check the name in callback:{target}"
            ) from exc
    if not callable(obj):
        raise ConfigError(f"callback {target!r} is a {type(obj).__name__}, not a function")
    return CallbackSink(obj, name=f"callback:{target}")  # type: ignore[arg-type]
