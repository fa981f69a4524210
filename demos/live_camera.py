"""Watch a live camera (or any stream URL) with the segmentation overlaid; q or Esc quits.

    python demos/live_camera.py            # camera 0
    python demos/live_camera.py rtsp://127.0.0.1:8554/cam
"""

import sys

from streamseg.pipeline import Pipeline, PipelineConfig

source = sys.argv[1] if len(sys.argv) > 1 else "0"
config = PipelineConfig.from_dict(
    {
        "sources": [{"uri": source, "policy": "latest", "max_age_ms": 200}],
        "sinks": ["display:streamseg live"],
        "engine": {"nmf_init": "warm"},
        "batch_size": 1,
        "max_wait_ms": 0,
    }
)
stats = Pipeline(config).run()
print(f"{stats.frames_out} frames shown, dropped to stay live: {stats.dropped}")
