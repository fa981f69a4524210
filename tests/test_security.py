"""Paths and URLs from configs and the command line are data, never shell text or code."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import torch

from streamseg.model import build_segnext

from helpers import ROOT, make_video

pytestmark = pytest.mark.timeout(120)

_SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv")}


def test_the_package_never_starts_a_shell_or_evaluates_text():
    offenders = []
    for path in sorted((ROOT / "streamseg").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("subprocess", "pty", "commands") for n in names):
                    offenders.append(f"{where} imports {names}")
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in ("eval", "exec", "compile", "__import__"):
                    offenders.append(f"{where} calls {f.id}()")
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in _SHELL_CALLS:
                    offenders.append(f"{where} calls {f.value.id}.{f.attr}()")
                if any(k.arg == "shell" for k in node.keywords):
                    offenders.append(f"{where} passes shell=")
    assert not offenders, offenders


def test_shell_metacharacters_in_paths_and_urls_stay_literal(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    meta = {"variant": "segnext_t", "classes": ["a", "b"], "palette": [[0, 0, 0], [255, 0, 0]], "test_scale": [64, 48]}
    torch.save({"state_dict": build_segnext("segnext_t", num_classes=2).state_dict(), "meta": meta}, weights)
    video = make_video(tmp_path / "in $(touch PWNED1); `touch PWNED2`.mp4", 3, size=(64, 48))
    masks = "out;touch PWNED3|touch PWNED4&&touch PWNED5"
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", "--source", str(video), "--sink", f"masks:{masks}/",
         "--sink", "video:v$(touch PWNED6).mp4", "--weights", str(weights), "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / masks).iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert (tmp_path / "v$(touch PWNED6).mp4").stat().st_size > 0
    url = "rtsp://127.0.0.1:9/cam;touch PWNED7"
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg", "run", "--source", url, "--set", "sources.0.options.reconnect=false",
         "--sink", "masks:m/", "--weights", str(weights), "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and "127.0.0.1:9" in proc.stderr
    assert not list(tmp_path.rglob("PWNED*")), "a shell ran text from a path or URL"


def test_checkpoints_are_never_unpickled_as_code(tmp_path):
    """The malicious-pickle case lives with the checkpoint tests; this makes sure it still exists."""
    text = (ROOT / "tests" / "model" / "test_checkpoint.py").read_text()
    assert "malicious" in text and "weights_only" in (ROOT / "streamseg" / "model" / "checkpoint.py").read_text()
