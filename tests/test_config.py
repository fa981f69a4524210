"""``--set`` overrides: nested keys, list items by index, clear errors."""

from __future__ import annotations

import pytest

from streamseg.config import apply_overrides, parse_set
from streamseg.errors import ConfigError
from streamseg.pipeline import PipelineConfig


def test_set_reaches_list_items_by_index():
    base = {"sources": ["in.mp4", {"uri": "rtsp://cam/1", "options": {"read_timeout": 5}}], "sinks": ["video:o.mp4"]}
    merged = apply_overrides(
        PipelineConfig.expand_shorthand(base),  # as `streamseg run` does: plain strings become mappings
        parse_set(["sources.0.policy=latest", "sources.1.options.reconnect=false", "sinks.0.options.crf=30"]),
    )
    cfg = PipelineConfig.from_dict(merged)
    assert cfg.sources[0].uri == "in.mp4" and cfg.sources[0].policy == "latest"
    assert cfg.sources[1].options == {"read_timeout": 5, "reconnect": False}
    assert cfg.sinks[0].spec == "video:o.mp4" and cfg.sinks[0].options == {"crf": 30}
    assert base["sources"][0] == "in.mp4"  # the input is not modified


def test_set_index_out_of_range_names_the_list():
    with pytest.raises(ConfigError, match=r"sources.2: sources has 1 entries"):
        apply_overrides({"sources": ["a.mp4"]}, parse_set(["sources.2.policy=latest"]))


def test_set_needs_key_equals_value():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["batch_size"])
