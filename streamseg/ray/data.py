"""Ray Data: ``ds.map_batches(Segment, fn_constructor_kwargs={...}, concurrency=N, batch_size=B)``.

For frames already in a dataset (``ray.data.read_images``, ``read_videos``): each actor builds one
:class:`~streamseg.engine.Segmenter` from the same engine options as everywhere else and adds a
``mask`` column (and an ``overlay`` column when asked) to every batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Segment"]


class Segment:
    """A callable class for ``map_batches``: the ``column`` of uint8 H x W x 3 RGB images -> ``mask`` (uint8/uint16)."""

    def __init__(self, *, column: str = "image", overlay: bool = False, alpha: float = 0.5, **engine: Any) -> None:
        from streamseg.engine import EngineConfig, Segmenter

        self.column, self.overlay, self.alpha = column, bool(overlay), float(alpha)
        self.segmenter = Segmenter(config=EngineConfig().replace(**engine))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from streamseg.errors import InputError

        if self.column not in batch:
            raise InputError(f"the batch has no column {self.column!r} (it has {sorted(batch)}); pass column=...")
        images = [np.asarray(image) for image in batch[self.column]]
        masks = [p.mask for p in self.segmenter.segment(images)]
        out = dict(batch)
        out["mask"] = _column(masks)
        if self.overlay:
            from streamseg.draw import overlay

            palette = np.asarray(self.segmenter.palette, np.uint8)
            out["overlay"] = _column([overlay(i, m, palette, self.alpha) for i, m in zip(images, masks)])
        return out


def _column(arrays: list[np.ndarray]) -> np.ndarray:
    """One array when every item has the same shape (a tensor column), else an object array of them (what
    Ray Data stores as a variable-shaped tensor column, like ``read_images`` of mixed sizes gives)."""
    if arrays and all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column
