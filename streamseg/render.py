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

from streamseg.draw import LegendLayout, View

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


def _class_ids(masks: Tensor) -> Tensor:
    """Masks as int32 class ids: wide masks travel as int16 holding uint16 bits."""
    ids = masks.to(torch.int32)
    return ids & 0xFFFF if masks.dtype == torch.int16 else ids


class _LegendLayers:
    """Every legend row a frame of one size can show, drawn once on the host and kept on the device.

    Drawing is linear in what lies beneath: a row drawn on black gives its colour term ``P`` and the
    same row on the darkened white (85) gives ``D``, so over any darkened pixel ``d`` the row is
    ``d * D / 85 + P``, within one grey level of drawing it there (OpenCV rounds each stroke).
    Layers 0..K-1 are the classes (swatch and name), K..2K-1 ``+1 more`` .. ``+K more``, 2K nothing.
    """

    MARGIN = 2  # anti-aliasing may reach a pixel or two above a row's top

    def __init__(self, h: int, w: int, classes: Sequence[str], palette: np.ndarray, device: torch.device) -> None:
        self.layout = lay = LegendLayout.for_height(h)
        k = len(classes)
        labels = list(classes) + [f"+{n} more" for n in range(1, k + 1)]
        widths = [lay.text_width(label) for label in labels] + [0]
        self.height = 2 * lay.row + self.MARGIN  # a row and its descenders
        self.width = min(w, lay.box_width(max(widths)) + 2 * lay.row)  # text may run past its measured width
        black = np.zeros((len(labels) + 1, self.height, self.width, 3), np.uint8)
        grey = np.full_like(black, 85)
        for i, label in enumerate(labels):
            colour = tuple(int(c) for c in palette[i]) if i < min(k, len(palette)) else (0, 0, 0) if i < k else None
            for canvas in (black[i], grey[i]):
                lay.draw_row(canvas, self.MARGIN, label, colour)  # type: ignore[arg-type]
        self.p = torch.from_numpy(black).to(device)  # uint8 on the device: 6 bytes a pixel a row
        self.d = torch.from_numpy(grey - black).to(device)  # 0..85
        self.box_w = torch.tensor([lay.box_width(x) for x in widths], device=device).clamp_(max=w)
        self.k = k

    def draw(self, out: Tensor, masks: Tensor) -> Tensor:
        """``out`` (B, H, W, 3) uint8 with each frame's legend of the classes its mask shows."""
        lay, k, (b, h, w) = self.layout, self.k, masks.shape
        ids = _class_ids(masks).reshape(b, -1).to(torch.int64).clamp_(max=k)  # past the classes: no row
        present = torch.zeros((b, k + 1), dtype=torch.bool, device=masks.device).scatter_(1, ids, True)[:, :k]
        count = present.sum(1)
        more = count > lay.rows_fit
        shown = torch.where(more, lay.rows_fit - 1, count)
        slots = min(lay.rows_fit, k)
        rank = present.cumsum(1) - 1  # the row of each present class, in id order
        at = torch.where(present & (rank < shown[:, None]), rank, slots)  # past the last slot: nowhere
        layer = torch.full((b, slots + 1), 2 * k, dtype=torch.int64, device=masks.device)
        layer.scatter_(1, at, torch.arange(k, device=masks.device).expand(b, k))
        layer = layer[:, :slots]
        rows = torch.arange(slots, device=masks.device)
        layer = torch.where(more[:, None] & (rows == shown[:, None]), k + count[:, None] - shown[:, None] - 1, layer)
        labels = shown + more.long()
        box_w = torch.where(rows < labels[:, None], self.box_w[layer], 0).amax(1)
        box_h = (2 * lay.pad + lay.row * labels).clamp(max=h)
        top = min(h, 2 * lay.pad + lay.row * slots + self.height)
        region = out[:, :top, : self.width].to(torch.float32)
        yy = torch.arange(top, device=out.device).view(1, -1, 1)
        xx = torch.arange(self.width, device=out.device).view(1, 1, -1)
        inside = ((yy < box_h.view(-1, 1, 1)) & (xx < box_w.view(-1, 1, 1)) & (count > 0).view(-1, 1, 1))[..., None]
        region = torch.where(inside, torch.div(region, 3, rounding_mode="floor"), region)
        for r in range(slots):
            y0 = lay.pad + r * lay.row - self.MARGIN
            y1 = min(top, y0 + self.height)
            if y1 <= max(0, y0):
                break
            lo = max(0, y0)
            p, d = self.p[layer[:, r], lo - y0 : y1 - y0].float(), self.d[layer[:, r], lo - y0 : y1 - y0].float()
            region[:, lo:y1] = (region[:, lo:y1] * d / 85.0 + p).round_()
        out = out.clone()
        out[:, :top, : self.width] = region.clamp_(0, 255).to(torch.uint8)
        return out


class Renderer:
    """Renders views of a batch on the device the frames and masks are on; tables are cached per device and size.

    A legend needs a table of every row it can show (~25 MB at 720p for 150 classes), so models with
    more than :attr:`MAX_LEGEND_CLASSES` classes leave legends to the sinks (:meth:`can_render`).
    """

    MAX_LEGEND_CLASSES = 256

    def __init__(self, palette: np.ndarray, classes: Sequence[str] = ()) -> None:
        self.classes = tuple(classes)
        self._palette = palette = np.asarray(palette, np.uint8)
        self._legends: dict[tuple[int, int, torch.device], _LegendLayers] = {}
        lut = np.zeros((65536, 3), np.uint8)  # every id a mask can hold: ids past the palette are black
        lut[: min(len(palette), 65536)] = palette[:65536]
        self._lut_host = torch.from_numpy(lut)
        self._luts: dict[torch.device, Tensor] = {}

    def can_render(self, view: View) -> bool:
        return not view.legend or 0 < len(self.classes) <= self.MAX_LEGEND_CLASSES

    def _lut(self, device: torch.device) -> Tensor:
        if device not in self._luts:
            self._luts[device] = self._lut_host.to(device)
        return self._luts[device]

    def colorize(self, masks: Tensor) -> Tensor:
        """``(B, H, W)`` class ids (uint8, or int16 holding uint16 bits) -> ``(B, H, W, 3)`` uint8 RGB."""
        return self._lut(masks.device)[_class_ids(masks)]

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

    def legend(self, pictures: Tensor, masks: Tensor) -> Tensor:
        """The class legend drawn on ``pictures`` (the frames' masks say which classes each one shows)."""
        h, w = pictures.shape[1:3]
        key = (h, w, pictures.device)
        if key not in self._legends:
            if len(self._legends) > 16:  # sizes come and go (reconnects): keep the table small
                self._legends.clear()
            self._legends[key] = _LegendLayers(h, w, self.classes, self._palette, pictures.device)
        return self._legends[key].draw(pictures, masks)

    def render(self, images: Tensor, masks: Tensor, views: Iterable[View]) -> dict[View, Tensor]:
        """Each view of the batch, finished for its encoder (I420 planes or RGB), on the frames' device."""
        out = {}
        for view in views:
            picture = self.draw(images, masks, view)
            if view.legend and self.classes:
                picture = self.legend(picture, masks)
            out[view] = rgb_to_i420(picture) if view.pix_fmt == "yuv420p" else picture
        return out


def render_views(
    image: np.ndarray, mask: np.ndarray, palette: np.ndarray, views: Sequence[View], *, classes: Sequence[str] = (),
    device: str = "cpu",
) -> Mapping[View, np.ndarray]:  # fmt: skip
    """One frame's views as host arrays (tests, benchmarks, and callers without an engine)."""
    renderer = Renderer(palette, classes)
    images = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
    mask = np.ascontiguousarray(mask)
    masks = torch.from_numpy(mask.view(np.int16) if mask.dtype == np.uint16 else mask.astype(np.uint8, copy=False))
    rendered = renderer.render(images, masks[None].to(device), views)
    return {view: planes[0].cpu().numpy() for view, planes in rendered.items()}

