"""A control loop that segments each camera frame synchronously and steers away from obstacles.

No threads: ``segmenter(frame)`` returns the mask for this frame before the loop goes on.
Here the frames come from a synthetic clip; on a robot they come from its camera driver.

    python demos/robot_loop.py [steps]
"""

import sys
import time

import numpy as np

from streamseg.engine import Segmenter
from streamseg.synth import SceneClip

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
segmenter = Segmenter()  # the bundled demo model; pass weights="segnext_t_ade20k" for real scenes
camera = SceneClip(seed=7, size=(320, 180))

for step in range(steps):
    frame, _ = camera.frame(step)
    t0 = time.perf_counter()
    mask = segmenter(frame)  # class ids, same size as the frame
    ms = (time.perf_counter() - t0) * 1000
    obstacle = mask != 0  # anything that is not background
    left, right = obstacle[:, : mask.shape[1] // 2].mean(), obstacle[:, mask.shape[1] // 2 :].mean()
    steer = float(np.clip(right - left, -1, 1))  # turn towards the freer side
    print(f"step {step:3d}: obstacles left {left:.2f} right {right:.2f} -> steer {steer:+.2f} ({ms:.0f} ms)")
