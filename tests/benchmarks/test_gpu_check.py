"""benchmarks/gpu_check.py runs on the CPU (``--device cpu --quick``) so the one GPU call it is made for never
finds it broken; benchmarks/host_ceiling.py comes with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_quick_on_the_cpu_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    failed = {k: v["error"] for k, v in report.items() if isinstance(v, dict) and "error" in v}
    assert not failed, failed
    assert report["device"]["cores"] >= 1 and report["device"]["name"]
    assert report["tests"]["returncode"] == 0 and "passed" in report["tests"]["summary"]
    hd, wide = report["rows"][0], report["rows"][-1]
    assert hd["engine_fps"] > 0 and hd["pipeline_fps"] > 0 and hd["naive_fps"] > 0
    assert wide["end_to_end_fps"] > 0 and wide["input"] == [384, 192]
    assert report["single_frame"]["median_ms"] > 0
    (row,) = report["host_ceiling"]["rows"]
    assert row["size"] == "320x180" and row["sinks"] == "video,masks"
    assert row["fps"] > 0 and row["core_ms_per_frame"] > 0 and row["max_thread_ms_per_frame"] >= 0
    assert report["profile"] and all(p["calls"] >= 1 for p in report["profile"])
    assert report["goals"]["judged"] is False  # a CPU is not judged against the H100 targets
    assert sum(report["seconds"].values()) < 120
