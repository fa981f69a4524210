"""Training data: folders of images/ + masks/, synthetic scenes on the fly, and mmseg's augmentations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from streamseg.datasets import IGNORE_INDEX, MEAN, STD, folder_pairs, read_class_names, read_image, read_mask
from streamseg.training.config import AugmentConfig, DataConfig


def augment(
    img: np.ndarray, mask: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """RandomResize (keep ratio) -> flip -> RandomCrop (cat_max_ratio) -> photometric.

    The crop is drawn from the image padded the way the engine pads it at test time
    (bottom/right to a multiple of ``pad_divisor``), so the model sees that band in
    training: without it, pixels next to the band get spurious classes at inference.
    Returns the crop, its mask (255 on padding) and the (height, width) of its real
    pixels; :func:`to_tensors` sets the rest to 0 after normalisation, as the engine does.
    """
    h, w = mask.shape
    ratio = rng.uniform(*cfg.ratio_range)
    long_edge, short_edge = max(cfg.scale) * ratio, min(cfg.scale) * ratio
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    nh, nw = max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST)
    if rng.random() < cfg.flip_prob:
        img, mask = img[:, ::-1], mask[:, ::-1]
    d = max(1, cfg.pad_divisor)
    ph, pw = -(-nh // d) * d, -(-nw // d) * d
    if (ph, pw) != (nh, nw):
        img = np.pad(img, ((0, ph - nh), (0, pw - nw), (0, 0)))
        mask = np.pad(mask, ((0, ph - nh), (0, pw - nw)), constant_values=IGNORE_INDEX)
    ch, cw = cfg.crop_size
    for _ in range(10):  # mmseg: retry crops where one class covers more than cat_max_ratio
        y = int(rng.integers(0, max(ph - ch, 0) + 1))
        x = int(rng.integers(0, max(pw - cw, 0) + 1))
        crop = mask[y : y + ch, x : x + cw]
        labels, counts = np.unique(crop[crop != IGNORE_INDEX], return_counts=True)
        if cfg.cat_max_ratio >= 1 or len(counts) > 1 and counts.max() / counts.sum() < cfg.cat_max_ratio:
            break
    img, mask = img[y : y + ch, x : x + cw], mask[y : y + ch, x : x + cw]
    valid = (max(0, min(ch, nh - y)), max(0, min(cw, nw - x)))
    if cfg.photometric:
        img = photometric(np.ascontiguousarray(img), rng, hue_delta=cfg.hue_delta)
    return np.ascontiguousarray(img), np.ascontiguousarray(mask), valid


def photometric(img: np.ndarray, rng: np.random.Generator, *, hue_delta: int = 18) -> np.ndarray:
    """mmseg's PhotoMetricDistortion: brightness, contrast, saturation, hue (+-``hue_delta`` OpenCV units), each p=0.5."""
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        out += rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    if contrast_first and rng.random() < 0.5:
        out *= rng.uniform(0.5, 1.5)
    out = np.clip(out, 0, 255).astype(np.uint8)
    saturation, hue = rng.random() < 0.5, rng.random() < 0.5  # each p=0.5; one HSV round trip for both
    if saturation or hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.int16)
        if saturation:
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255)
        if hue:
            hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-hue_delta, hue_delta + 1))) % 180
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    if not contrast_first and rng.random() < 0.5:
        out = np.clip(out.astype(np.float32) * rng.uniform(0.5, 1.5), 0, 255).astype(np.uint8)
    return out


def to_tensors(
    img: np.ndarray, mask: np.ndarray, valid: tuple[int, int], crop: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise, zero what is padding (engine-style), and pad to the crop size (0 / ignore)."""
    x = np.zeros((crop[0], crop[1], 3), np.float32)
    vh, vw = valid
    x[:vh, :vw] = (img[:vh, :vw].astype(np.float32) - _MEAN) / _STD
    y = np.full(crop, IGNORE_INDEX, np.int64)
    y[: mask.shape[0], : mask.shape[1]] = mask
    return torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(y)


_MEAN = np.array(MEAN, np.float32)
_STD = np.array(STD, np.float32)


class SyntheticDataset(IterableDataset):
    """Endless independent synthetic scenes, augmented; each worker and iteration draws its own seed."""

    def __init__(self, data: DataConfig, augment_cfg: AugmentConfig, *, start: int = 0) -> None:
        self.data, self.augment_cfg, self.start = data, augment_cfg, start

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from streamseg.synth import SceneClip, random_sample

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        i = self.start + worker
        while True:
            rng = np.random.default_rng([self.data.seed, i])
            if i % 2:  # a frame of a random clip: the distribution videos are checked on
                clip = SceneClip(seed=int(rng.integers(2**31)), size=tuple(self.data.size))
                img, mask = clip.frame(int(rng.integers(0, 600)))
            else:  # an independent random scene: more layouts per sample
                img, mask = random_sample(rng, size=self.data.size)
            q = int(rng.integers(self.data.jpeg_quality[0], self.data.jpeg_quality[1] + 1))
            ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
            yield to_tensors(*augment(img, mask, self.augment_cfg, rng), self.augment_cfg.crop_size)
            i += workers


def folder_classes(path: str | Path) -> int | None:
    names = read_class_names(path)
    return None if names is None else len(names)


class FolderDataset(Dataset):
    """A folder of images/ + masks/, augmented per access."""

    def __init__(self, data: DataConfig, augment_cfg: AugmentConfig) -> None:
        self.pairs = folder_pairs(data.path)
        self.augment_cfg, self.seed = augment_cfg, data.seed
        self._epoch_draws = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask_path = self.pairs[index]
        img, mask = read_image(image), read_mask(mask_path)
        rng = np.random.default_rng([self.seed, index, int(torch.randint(0, 2**31 - 1, ()).item())])
        return to_tensors(*augment(img, mask, self.augment_cfg, rng), self.augment_cfg.crop_size)


def worker_init(worker_id: int) -> None:
    """One OpenCV thread per loader worker: the workers already use every core between them."""
    cv2.setNumThreads(1)


def infinite(loader: torch.utils.data.DataLoader) -> Iterator:
    while True:
        yield from loader


def warmup_iters_for(iters: int, configured: int | None) -> int:
    """mmseg warms up for 1500 of 160k iterations; a shorter run keeps the same fraction."""
    if configured is not None:
        return configured
    return max(1, math.ceil(1500 * min(1.0, iters / 160_000)))
