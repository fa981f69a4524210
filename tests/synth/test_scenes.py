"""The scene generator: determinism, ground-truth exactness, motion, coverage of all classes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamseg.errors import ConfigError
from streamseg.synth import CLASSES, IGNORE_INDEX, PALETTE, SceneClip, random_sample
from streamseg.synth.raster import Pose, draw_object, motion_blur
from streamseg.synth.shapes import make_shape

SIZE = (160, 96)
OBJECT_CLASSES = set(range(1, len(CLASSES)))
VALID = OBJECT_CLASSES | {0, IGNORE_INDEX}


def test_class_table() -> None:
    assert len(CLASSES) == 8 and CLASSES[0] == "background"
    assert len(set(CLASSES)) == 8 and all(c == c.lower() and " " not in c for c in CLASSES)
    assert PALETTE.shape == (8, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(row) for row in PALETTE.tolist()}) == 8
    assert IGNORE_INDEX == 255


def test_frame_shapes_and_values() -> None:
    clip = SceneClip(seed=3, size=SIZE, fps=30)
    img, mask = clip.frame(0)
    assert img.shape == (96, 160, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert mask.shape == (96, 160) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= VALID
    assert img.std() > 5  # not a blank picture


def test_same_seed_same_frames_in_any_order() -> None:
    a = SceneClip(seed=11, size=SIZE, fps=30)
    b = SceneClip(seed=11, size=SIZE, fps=30)
    sequential = list(a.frames(12))
    for i in (11, 3, 7, 0):  # random access on a fresh clip, out of order
        img, mask = b.frame(i)
        assert np.array_equal(img, sequential[i][0])
        assert np.array_equal(mask, sequential[i][1])


def test_different_seed_differs() -> None:
    img_a, mask_a = SceneClip(seed=1, size=SIZE).frame(5)
    img_b, mask_b = SceneClip(seed=2, size=SIZE).frame(5)
    assert not np.array_equal(img_a, img_b)
    assert not np.array_equal(mask_a, mask_b)


def test_objects_move_between_frames() -> None:
    clip = SceneClip(seed=5, size=SIZE, fps=15)
    masks = [m for _, m in clip.frames(15)]
    changed = [np.count_nonzero(masks[i] != masks[i + 1]) for i in range(len(masks) - 1)]
    assert sum(c > 0 for c in changed) >= 12  # nearly every step moves something
    assert np.count_nonzero(masks[0] != masks[-1]) > 0.02 * masks[0].size


def test_every_class_appears_and_objects_enter_and_leave() -> None:
    clip = SceneClip(seed=7, size=(96, 64), fps=2)  # 40 s of scene time, coarse in time
    present = [set(np.unique(m).tolist()) - {0, IGNORE_INDEX} for _, m in clip.frames(80)]
    assert set().union(*present) == OBJECT_CLASSES
    assert len({frozenset(p) for p in present}) > 5  # the cast changes: objects come and go
    counts = [len(p) for p in present]
    assert 2 <= float(np.median(counts)) <= 6


def test_mask_is_pixel_exact_for_drawn_object() -> None:
    """Image and mask come from one raster: the texture lands exactly where the class is written."""
    img = np.full((64, 80, 3), 7, np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    patch = np.zeros((32, 32, 3), np.uint8)
    patch[...] = (200, 10, 90)
    for cls in sorted(OBJECT_CLASSES):
        img[...] = 7
        mask[...] = 0
        shape = make_shape(np.random.default_rng(cls), cls)
        draw_object(img, mask, shape, patch, Pose(cx=37.3, cy=30.6, radius=21.7, angle=0.7), cls)
        inside = mask == cls
        assert set(np.unique(mask).tolist()) == {0, cls}
        assert inside.sum() > 200
        assert (img[inside] == (200, 10, 90)).all()
        assert (img[~inside] == 7).all()
    # a ring has a hole that stays background
    ring = CLASSES.index("ring")
    mask[...] = 0
    draw_object(img, mask, make_shape(np.random.default_rng(0), ring), patch, Pose(cx=40, cy=32, radius=25, angle=0.0), ring)
    assert mask[32, 40] == 0 and mask[32, 40 + 22] == ring


def test_occlusion_top_object_wins() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    red = np.full((16, 16, 3), (255, 0, 0), np.uint8)
    blue = np.full((16, 16, 3), (0, 0, 255), np.uint8)
    disc, box = CLASSES.index("disc"), CLASSES.index("box")
    draw_object(img, mask, make_shape(np.random.default_rng(0), box), red, Pose(cx=24, cy=32, radius=20, angle=0.0), box)
    draw_object(img, mask, make_shape(np.random.default_rng(0), disc), blue, Pose(cx=40, cy=32, radius=16, angle=0.0), disc)
    assert mask[32, 40] == disc and tuple(img[32, 40]) == (0, 0, 255)
    assert mask[32, 10] == box and tuple(img[32, 10]) == (255, 0, 0)


def test_motion_blur_marks_a_thin_ignore_band() -> None:
    img = np.zeros((60, 80, 3), np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    img[20:40, 30:50] = 255
    mask[20:40, 30:50] = 3
    motion_blur(img, mask, 9, 0.0)  # horizontal shake
    ignored = mask == IGNORE_INDEX
    assert ignored.any() and ignored.mean() < 0.05
    assert mask[30, 40] == 3 and mask[30, 5] == 0  # far from edges: unchanged
    assert (mask[20:40, 28:33] == IGNORE_INDEX).any()  # the left edge is ambiguous
    assert 0 < img[30, 30, 0] < 255  # and blurred


def test_same_scene_at_two_resolutions() -> None:
    """Layout is in frame-relative units: a 2x render downsampled matches the 1x masks."""
    small = SceneClip(seed=4, size=(96, 64), fps=10).frame(6)[1]
    big = SceneClip(seed=4, size=(192, 128), fps=10).frame(6)[1]
    down = cv2.resize(big, (96, 64), interpolation=cv2.INTER_NEAREST)
    valid = (small != IGNORE_INDEX) & (down != IGNORE_INDEX)
    assert (small[valid] == down[valid]).mean() > 0.95
    assert len(set(np.unique(small).tolist()) - {0, IGNORE_INDEX}) >= 1


def test_ignore_area_stays_small_over_a_clip() -> None:
    clip = SceneClip(seed=1, size=(320, 192), fps=10)  # seed 1 has camera shake within 6 s
    fractions = [float((m == IGNORE_INDEX).mean()) for _, m in clip.frames(60)]
    assert 0 < max(fractions) < 0.05
    assert sum(f > 0 for f in fractions) <= 10  # blur is occasional


def test_random_sample_is_deterministic_and_varied() -> None:
    a = random_sample(np.random.default_rng(9), SIZE)
    b = random_sample(np.random.default_rng(9), SIZE)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    with_objects = 0
    for _ in range(30):
        img, mask = random_sample(rng, SIZE)
        assert img.shape == (96, 160, 3) and img.dtype == np.uint8 and mask.shape == (96, 160) and mask.dtype == np.uint8
        classes = set(np.unique(mask).tolist())
        assert classes <= VALID
        seen |= classes
        with_objects += bool(classes - {0, IGNORE_INDEX})
    assert OBJECT_CLASSES <= seen
    assert with_objects >= 27


def test_object_sizes_are_large_enough() -> None:
    """Connected class regions are typically a sizeable fraction of the shorter side (output stride 8)."""
    rng = np.random.default_rng(3)
    diameters = []
    for _ in range(20):
        _, mask = random_sample(rng, (240, 160))
        for cls in set(np.unique(mask).tolist()) - {0, IGNORE_INDEX}:
            ys, xs = np.nonzero(mask == cls)
            diameters.append(max(np.ptp(ys), np.ptp(xs)) / 160)
    assert 0.15 <= float(np.median(diameters)) <= 0.6


@pytest.mark.parametrize("size", [(8, 8), (0, 100), ("a", 3), (100,)])
def test_bad_size_is_config_error(size) -> None:
    with pytest.raises(ConfigError, match="size"):
        SceneClip(seed=0, size=size)


def test_bad_arguments_are_config_errors() -> None:
    clip = SceneClip(seed=0, size=SIZE)
    with pytest.raises(ConfigError, match="frame index"):
        clip.frame(-1)
    with pytest.raises(ConfigError, match="fps"):
        SceneClip(seed=0, size=SIZE, fps=0)
    with pytest.raises(ConfigError, match="seed"):
        SceneClip(seed=-3, size=SIZE)
    with pytest.raises(ConfigError, match="default_rng"):
        random_sample(42, SIZE)  # type: ignore[arg-type]


def test_hues_of_classes_overlap() -> None:
    """Colour alone must not identify a class: the colours objects are painted with overlap across classes.

    Main hues cluster around a class centre (a strong but not decisive cue); second colours
    (patterns, stripes, dots) come from anywhere, so pixel colours of neighbouring classes overlap.
    """
    from streamseg.synth.shapes import object_colours

    hues: dict[int, list[float]] = {c: [] for c in OBJECT_CLASSES}
    rng = np.random.default_rng(0)
    for cls in OBJECT_CLASSES:
        for _ in range(200):
            for colour in object_colours(rng, cls):
                hsv = cv2.cvtColor(colour.astype(np.uint8)[None, None], cv2.COLOR_RGB2HSV_FULL)[0, 0]
                hues[cls].append(float(hsv[0]) * 360 / 256)

    def arc_overlap(x: list[float], y: list[float]) -> bool:
        return any(min(abs(p - q), 360 - abs(p - q)) < 5 for p in x[:100] for q in y[:100])

    assert all(arc_overlap(hues[c], hues[c % 7 + 1]) for c in OBJECT_CLASSES)
