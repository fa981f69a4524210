"""Drawing masks onto frames: palette lookup, alpha overlay, side-by-side and a class legend.

These run in the hot path of every visual sink (one call per frame), so they are
vectorised: a palette lookup is one ``np.take`` through a padded lookup table and
the blend is one ``cv2.addWeighted``. Images are RGB uint8 ``H x W x 3`` like
:class:`streamseg.types.Frame`; masks are ``H x W`` uint8/uint16 class ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np

from streamseg.errors import ConfigError, InputError

__all__ = [
    "MODES",
    "View",
    "colorize",
    "overlay",
    "side_by_side",
    "draw_legend",
    "LegendLayout",
    "present_classes",
    "render",
    "check_drawing",
]

#: What a visual sink can draw: the blended frame, the colourised mask alone, or both next to each other.
MODES = ("overlay", "mask", "side_by_side")

#: The pictures an engine can render for a sink: I420 planes for the H.264 encoders, or RGB.
VIEW_FORMATS = ("yuv420p", "rgb24")


def _check_palette(palette: np.ndarray) -> np.ndarray:
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise InputError(
            f"palette must be a non-empty (num_classes, 3) RGB array, got shape {palette.shape}; "
            "build one with streamseg.datasets.make_palette(num_classes)"
        )
    if palette.dtype != np.uint8:
        if palette.min() < 0 or palette.max() > 255:
            raise InputError("palette values must lie in 0..255; pass uint8 RGB colours")
        palette = palette.astype(np.uint8)
    return palette


def _check_mask(mask: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if mask.ndim != 2:
        raise InputError(f"mask must be H x W class ids, got shape {mask.shape}; squeeze batch/channel axes first")
    if mask.dtype not in (np.uint8, np.uint16):
        if mask.dtype.kind not in "iu":
            raise InputError(f"mask must hold integer class ids, got dtype {mask.dtype}; argmax the logits first")
        if mask.size and (mask.min() < 0 or mask.max() > 65535):
            raise InputError("mask class ids must lie in 0..65535; negative or huge ids are not classes")
        mask = mask.astype(np.uint16)
    if shape is not None and mask.shape != shape:
        raise InputError(
            f"mask shape {mask.shape} does not match the image's {shape}; "
            "resize the mask to the frame (nearest neighbour) before drawing"
        )
    return mask


def _lut(palette: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Palette padded with black to every id the mask dtype can hold, so the lookup needs no bounds check."""
    size = 256 if dtype == np.uint8 else 65536
    if len(palette) >= size:
        return np.ascontiguousarray(palette[:size])
    lut = np.zeros((size, 3), np.uint8)
    lut[: len(palette)] = palette
    return lut


def colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """RGB uint8 image of ``mask`` coloured by ``palette``; ids beyond the palette come out black."""
    palette = _check_palette(palette)
    mask = _check_mask(np.asarray(mask))
    lut = _lut(palette, mask.dtype)
    if mask.dtype == np.uint8 and mask.size:
        # cv2.LUT on a 3-channel copy is ~3x faster than np.take for 8-bit ids.
        return cv2.LUT(cv2.cvtColor(np.ascontiguousarray(mask), cv2.COLOR_GRAY2RGB), lut.reshape(256, 1, 3))
    return np.take(lut, mask, axis=0)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"image must be RGB uint8 H x W x 3, got {image.dtype} {image.shape}; convert it like Frame.image"
        )
    return image


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image * (1 - alpha) + colorize(mask) * alpha`` as a new RGB uint8 image."""
    image = _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in 0..1, got {alpha}; 0 shows the frame only, 1 the mask only")
    colours = colorize(_check_mask(np.asarray(mask), image.shape[:2]), palette)
    return cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)


def side_by_side(image: np.ndarray, mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The frame (left) and its colourised mask (right): ``H x 2W x 3``."""
    image = _check_image(image)
    colours = colorize(_check_mask(np.asarray(mask), image.shape[:2]), palette)
    return np.concatenate([image, colours], axis=1)


def present_classes(mask: np.ndarray) -> np.ndarray:
    """Sorted class ids that occur in ``mask`` (a bincount: several times faster than ``np.unique``)."""
    mask = _check_mask(np.asarray(mask))
    return np.flatnonzero(np.bincount(mask.ravel()))


_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class LegendLayout:
    """Where the legend's rows go in an image of height ``h``: the font scales with the height, so it stays
    readable at 720p and small at 160x120. Shared by the host drawing and the device one (:mod:`streamseg.render`)."""

    scale: float
    thickness: int
    text_h: int
    row: int
    pad: int
    swatch: int
    rows_fit: int

    @classmethod
    def for_height(cls, h: int) -> "LegendLayout":
        scale = max(0.3, min(1.0, h / 720.0))
        thickness = 1 if scale < 0.8 else 2
        (_, text_h), _ = cv2.getTextSize("Ag", _FONT, scale, thickness)
        row = text_h + max(4, int(6 * scale))
        pad = max(2, int(4 * scale))
        return cls(scale, thickness, text_h, row, pad, text_h, max(1, (h - 2 * pad) // row))

    def labels(self, classes: Sequence[str], ids: Sequence[int]) -> tuple[list[int], list[str]]:
        """The ids shown and every row's label: rows that do not fit are summarised as ``+N more``."""
        if len(ids) > self.rows_fit:
            shown, extra = list(ids[: self.rows_fit - 1]), len(ids) - (self.rows_fit - 1)
        else:
            shown, extra = list(ids), 0
        labels = [classes[i] if 0 <= i < len(classes) else f"class {i}" for i in shown]
        return shown, labels + ([f"+{extra} more"] if extra else [])

    def text_width(self, label: str) -> int:
        return int(cv2.getTextSize(label, _FONT, self.scale, self.thickness)[0][0])

    def box_width(self, text_w: int) -> int:
        return 3 * self.pad + self.swatch + text_w

    def draw_row(self, out: np.ndarray, y0: int, label: str, colour: tuple[int, int, int] | None) -> None:
        """One row at ``y0``: a swatch (``None``: none, for ``+N more``) and the label, white, anti-aliased."""
        pad = self.pad
        if colour is not None:
            cv2.rectangle(out, (pad, y0 + 1), (pad + self.swatch, y0 + self.swatch), colour, thickness=-1)
        cv2.putText(out, label, (2 * pad + self.swatch, y0 + self.text_h), _FONT, self.scale, (255, 255, 255),
                    self.thickness, cv2.LINE_AA)  # fmt: skip


def draw_legend(
    image: np.ndarray,
    classes: Sequence[str],
    palette: np.ndarray,
    present_ids: Iterable[int],
    *,
    copy: bool = True,
) -> np.ndarray:
    """A small box in the top-left corner with a swatch and the name of each class present.

    Rows that do not fit the image height are summarised as ``+N more`` (:class:`LegendLayout`).
    ``copy=False`` draws into ``image`` itself.
    """
    image = _check_image(image)
    palette = _check_palette(palette)
    out = image.copy() if copy else image
    ids = [int(i) for i in present_ids]
    if not ids:
        return out
    h, w = out.shape[:2]
    layout = LegendLayout.for_height(h)
    shown, labels = layout.labels(classes, ids)
    box_w = min(w, layout.box_width(max(layout.text_width(label) for label in labels)))
    box_h = min(h, 2 * layout.pad + layout.row * len(labels))
    # Darken the box instead of painting it opaque, so the scene stays visible behind the text.
    out[:box_h, :box_w] //= 3
    for k, label in enumerate(labels):
        colour = None
        if k < len(shown):
            i = shown[k]
            colour = tuple(int(c) for c in palette[i]) if i < len(palette) else (0, 0, 0)
        layout.draw_row(out, layout.pad + k * layout.row, label, colour)  # type: ignore[arg-type]
    return out


def render(
    image: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray,
    *,
    mode: str = "overlay",
    alpha: float = 0.5,
    classes: Sequence[str] | None = None,
    legend: bool = False,
) -> np.ndarray:
    """What a visual sink shows for one prediction, in one of :data:`MODES` (optionally with a legend)."""
    if mode == "overlay":
        out = overlay(image, mask, palette, alpha)
    elif mode == "mask":
        out = colorize(mask, palette)
    elif mode == "side_by_side":
        out = side_by_side(image, mask, palette)
    else:
        raise InputError(f"unknown drawing mode {mode!r}; use one of {', '.join(MODES)}")
    if legend and classes is not None:
        out = draw_legend(out, classes, palette, present_classes(mask), copy=False)
    return out


@dataclass(frozen=True)
class View:
    """What one visual sink shows, for an engine that renders on its device (:mod:`streamseg.render`).

    ``mode``, ``alpha`` and ``legend`` as in :func:`render`; ``pix_fmt`` is what its encoder takes:
    ``yuv420p`` (``(H*3/2, W)`` I420 planes, sides padded to even by repeating the edge) or ``rgb24``.
    """

    mode: str = "overlay"
    alpha: float = 0.5
    pix_fmt: str = "yuv420p"
    legend: bool = False

    def __post_init__(self) -> None:
        _, alpha = check_drawing(self.mode, self.alpha)
        object.__setattr__(self, "alpha", alpha)
        if self.pix_fmt not in VIEW_FORMATS:
            raise ConfigError(f"View.pix_fmt must be one of {', '.join(VIEW_FORMATS)}, got {self.pix_fmt!r}")


def check_drawing(mode: str, alpha: float | str) -> tuple[str, float]:
    """A visual sink's ``mode`` and ``alpha`` options, checked: ``(mode, alpha as float)``."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    try:
        alpha = float(alpha)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"alpha must be a number ({exc})") from exc
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie in 0..1, got {alpha}")
    return mode, alpha
