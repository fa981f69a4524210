"""CallbackSink: the function sees every prediction; its exceptions propagate."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from streamseg.errors import ConfigError
from streamseg.sinks import open_sink
from streamseg.sinks.callback import CallbackSink
from streamseg.types import Frame, Prediction


def _prediction(i: int) -> Prediction:
    return Prediction(Frame(image=np.zeros((4, 4, 3), np.uint8), index=i), np.zeros((4, 4), np.uint8))


def test_calls_function_for_every_prediction(context) -> None:
    seen: list[int] = []
    sink = CallbackSink(lambda p: seen.append(p.frame.index))
    sink.open(context)
    for i in range(3):
        sink.write(_prediction(i))
    sink.close()
    assert seen == [0, 1, 2] and sink.frames == 3
    assert sink.name.startswith("callback:")


def test_exception_propagates_unchanged(context) -> None:
    class Boom(Exception):
        pass

    def fn(p: Prediction) -> None:
        if p.frame.index == 1:
            raise Boom("user code failed")

    sink = CallbackSink(fn)
    sink.open(context)
    sink.write(_prediction(0))
    with pytest.raises(Boom, match="user code failed"):
        sink.write(_prediction(1))
    sink.close()
    assert sink.frames == 1


def test_not_callable() -> None:
    with pytest.raises(ConfigError, match="callable"):
        CallbackSink(42)  # type: ignore[arg-type]


def test_module_function_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context) -> None:
    (tmp_path / "user_hooks_for_test.py").write_text(
        textwrap.dedent(
            """
            SEEN = []
            class Hooks:
                @staticmethod
                def on_mask(p):
                    SEEN.append(int(p.mask.sum()))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sink = open_sink("callback:user_hooks_for_test:Hooks.on_mask")
    assert sink.name == "callback:user_hooks_for_test:Hooks.on_mask"
    sink.open(context)
    sink.write(_prediction(0))
    sink.close()
    assert sys.modules["user_hooks_for_test"].SEEN == [0]


@pytest.mark.parametrize(
    "spec, match",
    [
        ("callback:nocolon", "MODULE:FUNCTION"),
        ("callback:no_such_module_xyz:f", "cannot be imported"),
        ("callback:os:no_such_function", "no attribute"),
        ("callback:os:sep", "not a function"),
    ],
)
def test_bad_callback_specs(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_sink(spec)
