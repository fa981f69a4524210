"""Shared fixtures. Helpers live in ``helpers.py``; they are re-exported here for convenience."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import (  # noqa: F401  (re-exported)
    PARITY,
    RELAY,
    ROOT,
    SHARED,
    SYSTEM_PY,
    RtspRelay,
    decode_index,
    index_frame,
    make_video,
    relay_unavailable_reason,
)


@pytest.fixture
def rtsp_relay(tmp_path: Path):
    """A running relay; tests may call ``stop()`` / ``start()`` to simulate a server restart."""
    reason = relay_unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # CI installs the relay: a missing one is a failure there
        pytest.skip(reason)
    relay = RtspRelay(tmp_path / "relay.log").start()
    yield relay
    relay.stop()
