"""Training augmentation: the photometric step draws each distortion as mmseg's PhotoMetricDistortion does."""

from __future__ import annotations

import cv2
import numpy as np

from streamseg.training.data import photometric


def test_hue_is_shifted_in_half_of_the_images():
    # Green with R == B keeps OpenCV hue 60 through brightness, contrast (clipping included) and
    # saturation changes, so only the hue step moves it: p=0.5, less the 1-in-37 zero shifts.
    img = np.full((2, 2, 3), (40, 200, 40), np.uint8)
    outs = [photometric(img, np.random.default_rng(seed), hue_delta=18) for seed in range(600)]
    hues = [cv2.cvtColor(out, cv2.COLOR_RGB2HSV)[0, 0, 0] for out in outs]
    share = float(np.mean(np.array(hues) != 60))
    assert 0.42 < share < 0.55, share  # 0.5 * 36 / 37 = 0.486 expected
