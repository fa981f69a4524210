"""`streamseg run` as a user runs it: a subprocess, real files, signals and exit codes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import av
import numpy as np
import pytest
import torch

from streamseg.model import build_segnext

from helpers import make_video

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A random segnext_t checkpoint whose meta keeps frames at their own small size."""
    torch.manual_seed(0)
    model = build_segnext("segnext_t", num_classes=3)
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    meta = {"variant": "segnext_t", "classes": ["bg", "x", "y"], "palette": [[0, 0, 0], [255, 0, 0], [0, 0, 255]],
            "test_scale": [96, 64]}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path


def _run(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "streamseg", *args], cwd=cwd, capture_output=True, text=True, **kw)


def test_help_lists_commands():
    out = _run(["--help"], cwd=None)
    assert out.returncode == 0
    for cmd in ("demo", "run", "bench", "synth", "train", "eval", "weights"):
        assert cmd in out.stdout


def test_run_file_to_video_and_masks(tmp_path, tiny_weights):
    video = make_video(tmp_path / "in.mp4", 20, size=(96, 64))
    out = _run(["run", "--source", str(video), "--sink", "video:out.mp4", "--sink", "masks:m/", "--weights",
                str(tiny_weights), "--stats-json", "stats.json", "--no-progress"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_in"] == stats["frames_out"] == 20
    for key in ("dropped", "reconnects", "fps", "latency_ms", "stages"):
        assert key in stats
    assert set(stats["latency_ms"]) >= {"p50", "p95"}
    assert {"engine", "decode"} <= set(stats["stages"]) and stats["stages"]["engine"]["frames"] == 20
    # what ran: `streamseg run` defaults to the fastest backend installed: OpenVINO on a CPU, torch on a GPU
    from streamseg.engine.openvino_ir import openvino_available

    fastest = "openvino" if openvino_available() and not torch.cuda.is_available() else "torch"
    assert stats["engine"]["backend"] == fastest
    assert stats["engine"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert stats["engine"]["precision"] in ("fp32", "bf16", "fp16")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [f"{i:06d}.png" for i in range(20)]
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20


@pytest.mark.parametrize(
    "args,message",
    [
        (["--set", "batch_sise=2"], "did you mean 'batch_size'"),
        (["--set", "engine.precison=fp32"], "did you mean 'precision'"),
        (["--set", "batch_size=lots"], "batch_size: expected an integer"),
        (["--sink", "vidoe:x.mp4"], "did you mean 'video'"),
    ],
)
def test_bad_configuration_exits_2_naming_the_field(tmp_path, tiny_weights, args, message):
    video = make_video(tmp_path / "in.mp4", 3, size=(96, 64))
    out = _run(["run", "--source", str(video), "--weights", str(tiny_weights), "--no-progress", *args], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b"this is not a checkpoint", "not a PyTorch checkpoint"),
        ("other_variant", "segnext_s"),
    ],
)
def test_wrong_weights_exit_2_saying_what_is_wrong(tmp_path, content, message):
    weights = tmp_path / "w.pth"
    if content == "other_variant":
        torch.save({"state_dict": build_segnext("segnext_s", num_classes=3).state_dict()}, weights)
        extra = ["--model", "segnext_t"]
    else:
        weights.write_bytes(content)
        extra = []
    video = make_video(tmp_path / "in.mp4", 3, size=(96, 64))
    out = _run(["run", "--source", str(video), "--weights", str(weights), "--no-progress", *extra], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "w.pth" in out.stderr


def test_missing_input_and_config_files_exit_2(tmp_path):
    out = _run(["run", "--source", "nope.mp4", "--no-progress"], cwd=tmp_path)
    assert out.returncode == 2 and "nope.mp4" in out.stderr
    out = _run(["run", "missing.yaml"], cwd=tmp_path)
    assert out.returncode == 2 and "missing.yaml" in out.stderr
    (tmp_path / "bad.yaml").write_text("sources: [a.mp4]\nsinks: {oops\n")
    out = _run(["run", "bad.yaml"], cwd=tmp_path)
    assert out.returncode == 2 and "not valid YAML" in out.stderr


def test_a_broken_source_is_skipped_on_request_and_the_exit_code_says_so(tmp_path, tiny_weights):
    a = make_video(tmp_path / "a.mp4", 12, size=(96, 64))
    (tmp_path / "b.mp4").write_bytes(b"this is not a video" * 100)
    args = ["run", "--source", str(a), "--source", "b.mp4", "--sink", "masks:m/", "--weights", str(tiny_weights),
            "--stats-json", "stats.json", "--no-progress"]
    out = _run([*args, "--on-source-error", "skip"], cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "source 1 failed and was skipped" in out.stderr and "b.mp4" in out.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_out"] == 12 and list(stats["source_errors"]) == ["1"] and "error" not in stats
    assert len(list((tmp_path / "m").glob("*.png"))) == 12  # the good source is complete (the only one with frames)
    out = _run(args, cwd=tmp_path)  # the default stops at the first broken source
    assert out.returncode == 1 and "error in source 1" in out.stderr
    assert "error" in json.loads((tmp_path / "stats.json").read_text())


def test_shipped_configs_are_valid():
    from streamseg.config import load_yaml
    from streamseg.pipeline import PipelineConfig
    from streamseg.training import TrainConfig
    from streamseg.config import from_dict
    from helpers import ROOT

    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(configs) >= 5
    for path in configs:
        data = load_yaml(path)
        if path.name.startswith("train"):
            from_dict(TrainConfig, data)
        else:
            cfg = PipelineConfig.from_dict(data)
            assert cfg.sources and cfg.sinks


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_leaves_playable_video_and_exit_code(tmp_path, tiny_weights, sig, code):
    video = make_video(tmp_path / "in.mp4", 1500, size=(96, 64))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "run", "--source", str(video), "--sink", "video:out.mp4",
         "--weights", str(tiny_weights), "--stats-json", "stats.json", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out = tmp_path / "out.mp4"
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 2000) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.exists(), proc.stderr.read() if proc.poll() is not None else "no output yet"
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    finally:
        proc.kill()
    elapsed = time.monotonic() - sent
    assert proc.returncode == code, proc.stderr.read()
    assert elapsed < 2.0
    with av.open(str(out)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 0 < n < 1500
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_out"] == n
    assert stats["frames_in"] == stats["frames_out"] + stats["dropped"]["0"]


def test_sigint_with_web_viewers_stops_within_2s_and_frees_the_port(tmp_path, tiny_weights):
    from webtools import get, open_stream

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    video = make_video(tmp_path / "in.mp4", 1500, size=(96, 64))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "run", "--source", str(video), "--sink", f"web:127.0.0.1:{port}",
         "--sink", "video:out.mp4", "--weights", str(tiny_weights), "--stats-json", "stats.json", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(get(f"http://127.0.0.1:{port}/stats.json", timeout=2)[2])["frames_out"] > 20:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    viewers = [open_stream("127.0.0.1", port, "/stream/0") for _ in range(3)]
    stalled = open_stream("127.0.0.1", port, "/stream/0", rcvbuf=4096)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    finally:
        proc.kill()
        for v in viewers + [stalled]:
            v.close()
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, proc.stderr.read()
    assert elapsed < 2.0
    assert "live page at http://127.0.0.1:%d/" % port in proc.stderr.read()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_in"] == stats["frames_out"] + stats["dropped"]["0"]
    with socket.socket() as s:  # nobody listens there any more: a restarted run can bind it again at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does (closed viewers sit in TIME_WAIT)
        s.bind(("127.0.0.1", port))
        s.listen()


def _file_size_limit(limit: int):
    """A child's file-size limit: a write past it fails with EFBIG like a full disk with ENOSPC."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # its default action kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_keeps_what_was_written(tmp_path, tiny_weights):
    import cv2

    rng = np.random.default_rng(0)  # noise: about 5 kB per encoded frame, so the limit hits mid-run
    video = make_video(tmp_path / "in.mp4", list(rng.integers(0, 256, (125, 64, 96, 3), dtype=np.uint8)), fps=25)
    assert video.stat().st_size > 300_000
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", "--source", str(video), "--sink", "masks:m/", "--sink",
         "video:out.mp4", "--weights", str(tiny_weights), "--stats-json", "stats.json", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=_file_size_limit(120_000),
    )
    assert proc.returncode == 1, proc.stderr
    assert "disk full writing out.mp4" in proc.stderr and "free space" in proc.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert "disk full" in stats["error"]
    assert stats["frames_in"] == stats["frames_out"] + stats["dropped"]["0"]
    # the video was cut back to whole fragments: every frame in it decodes, in order
    with av.open(str(tmp_path / "out.mp4")) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 25 <= n < 125
    # the healthy masks sink wrote every frame the engine produced, none half-written
    pngs = sorted((tmp_path / "m").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(stats["frames_out"])]
    assert all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None for p in pngs)
