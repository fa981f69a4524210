"""Typed configuration: ``--set`` overrides, and for any input, unknown or mistyped keys named, valid ones kept."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseg.config import apply_overrides, from_dict, parse_set, to_dict
from streamseg.engine.config import EngineConfig
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


# --------------------------------------------------------------------------- property-based

_FIELDS = {f.name for f in fields(PipelineConfig)}


@settings(max_examples=200, deadline=None)
@given(key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=14).filter(lambda k: k not in _FIELDS))
def test_any_unknown_key_is_named(key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        PipelineConfig.from_dict({"sources": ["a.mp4"], key: 1})


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)))
def test_any_mistyped_value_names_its_key(value):
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return  # numbers written as strings are numbers
    with pytest.raises(ConfigError, match="batch_size"):
        PipelineConfig.from_dict({"sources": ["a.mp4"], "batch_size": value})


_valid_engine = st.fixed_dictionaries(
    {},
    optional={
        "precision": st.sampled_from(["auto", "fp32", "bf16"]),
        "backend": st.sampled_from(["torch", "openvino", "auto"]),
        "nmf_init": st.sampled_from(["reference", "fixed", "warm"]),
        "warm_steps": st.one_of(st.none(), st.integers(1, 9)),
        "test_scale": st.one_of(st.none(), st.tuples(st.integers(16, 4096), st.integers(16, 4096))),
        "in_flight": st.integers(1, 8),
        "fold": st.booleans(),
    },
)
_valid = st.fixed_dictionaries(
    {"sources": st.lists(st.sampled_from(["a.mp4", "rtsp://h/x", "0", "frames/"]), min_size=1, max_size=3)},
    optional={
        "sinks": st.lists(st.sampled_from(["video:o.mp4", "masks:m/", "display"]), max_size=3),
        "engine": _valid_engine,
        "batch_size": st.integers(1, 16),
        "max_wait_ms": st.floats(0, 1000, allow_nan=False),
        "progress": st.booleans(),
    },
)


@settings(max_examples=200, deadline=None)
@given(data=_valid)
def test_valid_configs_round_trip(data):
    cfg = PipelineConfig.from_dict(data)
    again = from_dict(PipelineConfig, to_dict(cfg))
    assert again == cfg
    assert isinstance(cfg.engine, EngineConfig) and [s.uri for s in cfg.sources] == data["sources"]


def test_the_ray_section_is_typed_and_checked():
    from streamseg.config import parse_set
    from streamseg.pipeline import PipelineConfig, RayConfig

    cfg = PipelineConfig.from_dict({"sources": ["v/*.mp4"], "ray": {"workers": 3, "resume": True}},
                                   overrides=parse_set(["ray.threads_per_worker=2"]))  # fmt: skip
    assert cfg.ray == RayConfig(workers=3, resume=True, threads_per_worker=2)
    assert PipelineConfig.from_dict({"sources": ["a.mp4"]}).ray is None
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        PipelineConfig.from_dict({"ray": {"max_retry": 1}})
    with pytest.raises(ConfigError, match="ray.workers"):
        PipelineConfig.from_dict({"ray": {"workers": 0}})
