"""One validator for every image that enters streamseg (sources, the engine, the push API).

A Frame's image has one representation: RGB uint8 ``H x W x 3``, C-contiguous.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamseg.errors import InputError

__all__ = ["as_rgb_uint8"]


def as_rgb_uint8(image: Any, *, what: str = "frame", allow_tensor: bool = True) -> Any:
    """Return ``image`` as RGB uint8 ``H x W x 3`` (numpy, or a torch tensor left on its device).

    Documented conversions: grey ``H x W`` or ``H x W x 1`` is replicated to three
    channels; ``H x W x 4`` (RGBA) drops alpha; non-contiguous arrays are copied.
    Everything else (float images, 16-bit, empty, wrong rank) is an :class:`InputError`:
    float ranges are ambiguous (0..1 or 0..255?), so streamseg will not guess.
    """
    is_tensor = allow_tensor and type(image).__module__.startswith("torch")
    if not is_tensor and not isinstance(image, np.ndarray):
        raise InputError(f"{what} is a {type(image).__name__}; expected a numpy RGB uint8 array of shape (H, W, 3)")
    shape = tuple(image.shape)
    dtype = str(image.dtype).replace("torch.", "")
    if dtype != "uint8":
        hint = (
            " (float images are ambiguous: convert with (img * 255).round().astype(np.uint8) if they are in [0, 1],"
            " or img.clip(0, 255).astype(np.uint8) if in [0, 255])"
            if "float" in dtype
            else " (e.g. 16-bit frames: (img >> 8).astype(np.uint8))"
        )
        raise InputError(f"{what} has dtype {dtype}; expected uint8 RGB{hint}")
    if len(shape) == 3 and shape[2] == 1:
        image, shape = image[:, :, 0], shape[:2]
    if len(shape) == 2:
        image = image[:, :, None].expand(-1, -1, 3) if is_tensor else np.repeat(image[:, :, None], 3, axis=2)
        shape = tuple(image.shape)
    if len(shape) != 3 or shape[2] not in (3, 4):
        raise InputError(f"{what} has shape {shape}; expected (H, W, 3) RGB (grey H x W and RGBA H x W x 4 are converted)")
    if shape[0] == 0 or shape[1] == 0:
        raise InputError(f"{what} is empty (shape {shape}); expected at least 1x1 pixels")
    if shape[2] == 4:
        image = image[:, :, :3]
    return image.contiguous() if is_tensor else np.ascontiguousarray(image)
