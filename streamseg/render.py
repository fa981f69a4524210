"""Drawing on the engine's device: what a visual sink shows, finished as the planes its encoder takes.

On a GPU the frame is already there (uploaded for the model) and so is the mask, so the overlay
and the RGB -> I420 conversion cost microseconds there instead of 1.5-5 ms per 720p frame in a
sink thread (:mod:`streamseg.draw` is the host drawing, which CPU engines keep: measured faster
there, see ``docs/performance.md``). The results equal the host drawing: the palette lookup
exactly, the blend within one grey level (both round ``image*(1-a) + colour*a`` to nearest, in
different float orders), and I420 bit for bit, because it uses OpenCV's own fixed-point BT.601
limited-range coefficients (chroma from the top-left pixel of each 2x2 block, as OpenCV does).

A :class:`~streamseg.draw.View` names what a sink wants; the engine renders each distinct view once
per frame and hands the results over in ``Prediction.rendered``. A sink that finds nothing there
draws on the host.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from streamseg.draw import View

__all__ = ["View", "Renderer", "rgb_to_i420", "render_views"]

# OpenCV's RGB -> YUV (BT.601, limited range) fixed-point coefficients, scaled by 2**20.
_SHIFT = 20
_Y = (269484, 528482, 102760)
_U = (-155188, -305135, 460324)
_V = (460324, -385875, -74448)


def _even(x: Tensor) -> Tensor:
    """``(B, H, W, C)`` padded bottom/right to even sides by repeating the edge (what the host encoder path does)."""
    ph, pw = x.shape[1] % 2, x.shape[2] % 2
    if ph:
        x = torch.cat([x, x[:, -1:]], dim=1)
    if pw:
        x = torch.cat([x, x[:, :, -1:]], dim=2)
    return x


def rgb_to_i420(rgb: Tensor) -> Tensor:
    """``(B, H, W, 3)`` uint8 RGB -> ``(B, H*3/2, W)`` uint8 I420, equal to ``cv2.COLOR_RGB2YUV_I420``.

    Odd sides are padded to even first (edge repeated). Integer arithmetic in int32, so the result
    is the same on every device.
    """
    x = _even(rgb).to(torch.int32)
    b, h, w, _ = x.shape
    r, g, bl = x[..., 0], x[..., 1], x[..., 2]
    half = 1 << (_SHIFT - 1)
    y = (_Y[0] * r + _Y[1] * g + _Y[2] * bl + (half + (16 << _SHIFT))) >> _SHIFT
    rs, gs, bs = r[:, ::2, ::2], g[:, ::2, ::2], bl[:, ::2, ::2]
    u = (_U[0] * rs + _U[1] * gs + _U[2] * bs + (half + (128 << _SHIFT))) >> _SHIFT
    v = (_V[0] * rs + _V[1] * gs + _V[2] * bs + (half + (128 << _SHIFT))) >> _SHIFT
    chroma = torch.cat([u.reshape(b, -1), v.reshape(b, -1)], dim=1).reshape(b, h // 2, w)
    return torch.cat([y, chroma], dim=1).clamp_(0, 255).to(torch.uint8)


class Renderer:
    """Renders views of a batch on the device the frames and masks are on; the palette is cached per device."""

    def __init__(self, palette: np.ndarray) -> None:
        palette = np.asarray(palette, np.uint8)
        lut = np.zeros((65536, 3), np.uint8)  # every id a mask can hold: ids past the palette are black
        lut[: min(len(palette), 65536)] = palette[:65536]
        self._lut_host = torch.from_numpy(lut)
        self._luts: dict[torch.device, Tensor] = {}

    def _lut(self, device: torch.device) -> Tensor:
        if device not in self._luts:
            self._luts[device] = self._lut_host.to(device)
        return self._luts[device]

    def colorize(self, masks: Tensor) -> Tensor:
        """``(B, H, W)`` class ids (uint8, or int16 holding uint16 bits) -> ``(B, H, W, 3)`` uint8 RGB."""
        ids = masks.to(torch.int32)
        if masks.dtype == torch.int16:
            ids = ids & 0xFFFF
        return self._lut(masks.device)[ids]

    def draw(self, images: Tensor, masks: Tensor, view: View) -> Tensor:
        """``(B, H, W, 3)`` uint8 RGB frames and their masks -> the view's RGB picture, uint8."""
        colours = self.colorize(masks)
        if view.mode == "mask":
            return colours
        if view.mode == "side_by_side":
            return torch.cat([images, colours], dim=2)
        a = float(view.alpha)
        blend = images.to(torch.float32) * (1.0 - a) + colours.to(torch.float32) * a
        return blend.round_().clamp_(0, 255).to(torch.uint8)

    def render(self, images: Tensor, masks: Tensor, views: Iterable[View]) -> dict[View, Tensor]:
        """Each view of the batch, finished for its encoder (I420 planes or RGB), on the frames' device."""
        out = {}
        for view in views:
            picture = self.draw(images, masks, view)
            out[view] = rgb_to_i420(picture) if view.pix_fmt == "yuv420p" else picture
        return out


def render_views(
    image: np.ndarray, mask: np.ndarray, palette: np.ndarray, views: Sequence[View], *, device: str = "cpu"
) -> Mapping[View, np.ndarray]:
    """One frame's views as host arrays (tests, benchmarks, and callers without an engine)."""
    renderer = Renderer(palette)
    images = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
    mask = np.ascontiguousarray(mask)
    masks = torch.from_numpy(mask.view(np.int16) if mask.dtype == np.uint16 else mask.astype(np.uint8, copy=False))
    rendered = renderer.render(images, masks[None].to(device), views)
    return {view: planes[0].cpu().numpy() for view, planes in rendered.items()}

