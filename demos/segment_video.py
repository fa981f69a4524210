"""Segment a video file: overlay video + PNG masks, then print the run's statistics.

    python demos/segment_video.py input.mp4 out/
"""

import sys

from streamseg.pipeline import Pipeline, PipelineConfig

src, out = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "out"
config = PipelineConfig.from_dict({"sources": [src], "sinks": [f"video:{out}/overlay.mp4", f"masks:{out}/masks"]})
stats = Pipeline(config).run()
print(stats.as_dict())
