"""The web sink's options, address parsing and previews (its server is tested in test_server.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamseg.errors import BackendUnavailableError, ConfigError
from streamseg.sinks import open_sink
from streamseg.sinks.web import WebSink, parse_address
from streamseg.sinks.web.sink import is_loopback

from webtools import prediction


@pytest.mark.parametrize("target,expected", [
    (None, ("127.0.0.1", 8080)),
    ("", ("127.0.0.1", 8080)),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("localhost", ("localhost", 8080)),
    (":9001", ("127.0.0.1", 9001)),
    ("9002", ("127.0.0.1", 9002)),
    ("[::1]:9003", ("::1", 9003)),
    ("::", ("::", 8080)),
    ("cams.example.org:80", ("cams.example.org", 80)),
])  # fmt: skip
def test_addresses(target, expected):
    assert parse_address(target) == expected


@pytest.mark.parametrize("target", ["host:http", "host:70000", "host:-1"])
def test_a_bad_port_says_how_to_write_it(target):
    with pytest.raises(ConfigError, match="web:HOST:PORT"):
        parse_address(target)


def test_loopback_or_not():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("cams.example.org")


def test_specs_build_web_sinks():
    assert open_sink("web").name == "web:127.0.0.1:8080"
    assert open_sink("web:0.0.0.0:9000", fps=5).name == "web:0.0.0.0:9000"
    with pytest.raises(ConfigError, match="unexpected keyword"):
        open_sink("web", colour="red")


@pytest.mark.parametrize("option,value", [("quality", 0), ("quality", 101), ("fps", 0), ("max_size", 8),
                                          ("max_clients", 0), ("client_timeout", "soon"), ("token", "short"),
                                          ("mode", "sketch"), ("alpha", 2)])  # fmt: skip
def test_bad_options_are_config_errors_naming_the_option(option, value):
    with pytest.raises(ConfigError, match=option):
        WebSink(**{option: value})


def test_without_the_extra_the_error_names_it(monkeypatch):
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match=r"pip install 'streamseg\[web\]'"):
        WebSink()


def test_a_4k_frame_costs_a_small_preview(web_sink):
    sink = web_sink(max_size=320, quality=70)
    pred = prediction(0, size=(3840, 2160), noise=True)
    jpeg, size = sink._preview(pred)
    assert size == (320, 180)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (180, 320, 3)
    # the class bands survive the scaling: left quarter is class 0 (black), the next one red (BGR here)
    assert image[90, 120, 2] > image[90, 120, 1] + 60


def test_every_source_gets_a_tile_and_its_own_numbers(web_sink):
    sink = web_sink()
    for i in range(5):
        sink.write(prediction(i, "a"))
    sink.write(prediction(0, "b"))
    views = sink.board.views()
    assert set(views) == {"a", "b"}
    assert views["a"]["frames"] == 5 and views["b"]["frames"] == 1
    assert views["a"]["previews"] == 1  # nobody watches: one preview a second per source
    assert views["a"]["latency_ms"]["p50"] is not None
    stats = sink.stats()
    assert stats["frames"] == 6 and stats["previews"] == {"a": 1, "b": 1} and stats["clients"] == 0
