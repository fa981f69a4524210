"""The kind registry: built-ins load on first use, and a kind that cannot load says why."""

from __future__ import annotations

import pytest

from streamseg.errors import BackendUnavailableError, ConfigError
from streamseg.registry import Registry


def test_builtins_load_lazily_and_unknown_kinds_name_the_closest():
    reg = Registry("streamseg.things", {"json": "json:dumps", "broken": "streamseg_no_such_module:thing"})
    assert reg.names() == ["broken", "json"]
    assert reg.get("json")({"a": 1}) == '{"a": 1}'
    with pytest.raises(ConfigError, match="unknown thing kind 'jsno'; did you mean 'json'"):
        reg.get("jsno")


def test_a_builtin_whose_import_fails_reports_the_import_error():
    """Not "unknown sink kind 'video'" when, say, cv2 is missing: the real reason and what to do."""
    reg = Registry("streamseg.sinks", {"video": "streamseg_no_such_module:VideoSink"})
    with pytest.raises(BackendUnavailableError, match=r"cannot load the video sink .*No module named 'streamseg_no_such_module'"):
        reg.get("video")


def test_registering_twice_is_an_error():
    reg = Registry("streamseg.things", {})
    reg.register("x", dict)
    assert reg.get("x") is dict
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("x", list)
