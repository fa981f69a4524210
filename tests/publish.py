"""A camera in its own process: publishes index-coded frames to an RTSP URL in real time.

    python tests/publish.py rtsp://127.0.0.1:PORT/cam0 [--fps 30] [--size 320x180]

Prints ``CONNECTED`` once the first packet went out. ``SIGUSR1`` freezes it (nothing is sent
from then on, as a camera that hangs); ``SIGTERM`` ends it cleanly. It reconnects when the server
drops it. Run as a separate process so that a soak or leak test measures the pipeline's process
alone: an in-process publisher's memory and CPU would be counted as the pipeline's.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import RtspPublisher  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="320x180", help="WxH")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    pub = RtspPublisher(args.url, fps=args.fps, size=(w, h), persist=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGUSR1, lambda *_: pub.stall(10 * 24 * 3600))
    pub.start()
    if not pub.connected.wait(20):
        print(f"FAILED {pub.errors}", flush=True)
        pub.stop()
        return 1
    print("CONNECTED", flush=True)
    while not done.wait(0.5):
        pass
    pub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
