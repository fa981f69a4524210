"""Shared fixtures. Helpers live in ``helpers.py``; they are re-exported here for convenience."""

from __future__ import annotations

import os

# Passive OpenMP waiting, as streamseg sets for its users (torch is imported below, before streamseg):
# spinning worker threads make every test many times slower on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib.util  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import (  # noqa: E402  # noqa: F401  (re-exported)
    PARITY,
    HttpServer,
    RtspRelay,
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


def _make_checkpoint_module():
    spec = importlib.util.spec_from_file_location("make_checkpoint", PARITY / "make_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_checkpoint", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def make_checkpoint():
    if not PARITY.exists():
        pytest.fail(f"parity fixtures not found at {PARITY} (set STREAMSEG_SHARED)")
    return _make_checkpoint_module()


@pytest.fixture(scope="session")
def parity_checkpoint(make_checkpoint, tmp_path_factory) -> Path:
    """The segnext_t parity weights, written as an mmseg 1.x checkpoint."""
    keys = make_checkpoint.load_keys(str(PARITY / "segnext_t" / "keys.json"))
    ckpt = make_checkpoint.make_checkpoint(keys, 1001)
    assert ckpt["meta"]["sha256"] == "929b7584a5b226b0a978e94bf6bfe155082e8c5d4ea136647878b7adf4e43cca"
    path = tmp_path_factory.mktemp("parity") / "segnext_t_parity.pth"
    torch.save(ckpt, path)
    return path

@pytest.fixture(scope="session")
def parity_model(parity_checkpoint):
    """segnext_t with the parity weights, eval mode. Shared by the whole session: never modify it in place
    (``fold_model`` and the engine work on copies; a test that must change weights copies it first)."""
    from streamseg.model import build_segnext, load_checkpoint

    model = build_segnext("segnext_t", num_classes=150)
    load_checkpoint(model, parity_checkpoint)
    return model.eval()


@pytest.fixture(scope="session")
def int8_cache(tmp_path_factory) -> Path:
    """One streamseg cache for the int8 tests: a model quantized once is reused by the others (as users get)."""
    return tmp_path_factory.mktemp("int8-cache")


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[HttpServer]:
    """A real HTTP server on 127.0.0.1 serving ``server.root`` (an empty folder to fill)."""
    root = tmp_path / "www"
    root.mkdir()
    server = HttpServer.folder(root)
    server.root = root  # type: ignore[attr-defined]
    yield server
    server.stop()


def _need_tool(name: str) -> str | None:
    return None if shutil.which(name) else name


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[str]:
    """A real X server (Xvfb) on a free display; yields the DISPLAY string.

    Skipped with the reason when Xvfb, ImageMagick's ``import`` or ``xdotool``
    is missing, except under ``CI=true`` where that is a failure. Tests run the
    OpenCV window in a child process: Qt keeps its X connection for the life of
    a process and aborts it when that server goes away.
    """
    missing = [tool for tool in ("Xvfb", "import", "xdotool") if _need_tool(tool)]
    if missing:
        reason = f"display tests need {', '.join(missing)}: apt-get install xvfb imagemagick xdotool"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    read_fd, write_fd = os.pipe()
    log = open(tmp_path / "xvfb.log", "wb")
    # -noreset: a bare Xvfb resets when its last client leaves, and a window opened
    # during that reset fails; the readiness check below is such a client.
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "640x480x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number.isdigit():
            raise RuntimeError(f"Xvfb did not start, see {tmp_path / 'xvfb.log'}")
        display = f":{number}"
        # Xvfb announces its number slightly before it serves clients (measured: 1 window in
        # 20 then failed to connect); wait until a real client gets an answer.
        env = {**os.environ, "DISPLAY": display}
        deadline = time.monotonic() + 10
        while subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True).returncode:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"Xvfb on {display} never answered, see {tmp_path / 'xvfb.log'}")
            time.sleep(0.05)
        yield display
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
