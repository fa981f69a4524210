"""The engine against a slow reference path written here from mmseg's test-time description."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamseg.engine import EngineConfig, Segmenter
from streamseg.errors import ConfigError, InputError, NumericalError, OutOfMemoryError
from streamseg.model import build_segnext

from helpers import scene

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


def reference_mask(model, img: np.ndarray, scale=(2048, 512)) -> np.ndarray:
    """mmseg 1.x's test path, one frame, step by step (keep-ratio resize, normalise, pad 32, whole inference)."""
    h, w = img.shape[:2]
    f = min(max(scale) / max(h, w), min(scale) / min(h, w))
    nh, nw = int(h * f + 0.5), int(w * f + 0.5)
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)  # mmcv.imresize, bilinear, cv2 backend
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = (x - MEAN) / STD
    ph, pw = math.ceil(nh / 32) * 32, math.ceil(nw / 32) * 32
    x = F.pad(x, (0, pw - nw, 0, ph - nh), value=0.0).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    with torch.no_grad():
        logits = model(x).contiguous()  # mmseg's tensors are plain NCHW
    logits = F.interpolate(logits, size=(ph, pw), mode="bilinear", align_corners=False)[:, :, :nh, :nw]
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].numpy().astype(np.uint8)


@pytest.mark.parametrize("h,w", [(481, 641), (720, 1280), (100, 3000)])
def test_masks_identical_to_reference_path(parity_model, h, w):
    seg = Segmenter(None, model=parity_model, precision="fp32", fold=False, nmf_init="reference", device="cpu", backend="torch")
    img = scene(h, w)
    torch.manual_seed(0)
    mask = seg(img)
    assert mask.shape == (h, w) and mask.dtype == np.uint8
    ref = reference_mask(parity_model, img)
    assert len(np.unique(ref)) >= 2  # a non-trivial mask
    np.testing.assert_array_equal(mask, ref)


def test_reference_path_catches_a_resize_bug(parity_model):
    """The comparison can fail: skipping the crop of the padding moves the mask."""
    img = scene(481, 641)
    ref = reference_mask(parity_model, img)
    seg = Segmenter(None, model=parity_model, precision="fp32", fold=False, nmf_init="reference", device="cpu", backend="torch")
    torch.manual_seed(0)
    preds = seg.segment([img], logits=True)
    wrong = F.interpolate(torch.from_numpy(preds[0].logits)[None], size=(481, 641), mode="bilinear").argmax(1)[0]
    assert (wrong.numpy() != ref).mean() > 0.001


def test_batch_invariance_under_default_policy(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    assert seg.config.nmf_init == "fixed"
    a, b, c = scene(120, 160, 1), scene(120, 160, 2), scene(90, 200, 3)
    alone = seg(a, stream_id="cam")
    batch = seg.segment([b, a, c, a], stream_ids=["x", "cam", "y", "z"])
    torch.manual_seed(123)  # the global RNG must not matter
    again = seg.segment([c, a], stream_ids=["y", "cam"])
    np.testing.assert_array_equal(batch[1].mask, alone)
    np.testing.assert_array_equal(batch[3].mask, alone)
    np.testing.assert_array_equal(again[1].mask, alone)
    assert batch[2].mask.shape == (90, 200)


def test_reference_policy_depends_on_batch(parity_model):
    """Why `fixed` is the stream default: under `reference`, batch mates change a frame's mask."""
    seg = Segmenter(None, model=parity_model, precision="fp32", nmf_init="reference", device="cpu", backend="torch")
    a, b = scene(128, 128, 1), scene(128, 128, 2)
    torch.manual_seed(0)
    alone = seg.segment([a])[0].mask
    torch.manual_seed(0)
    second = seg.segment([b, a])[1].mask
    assert (alone != second).any()


def test_results_never_mix_frames(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    imgs = [scene(64, 96, 1), scene(96, 64, 2), scene(64, 96, 3), scene(50, 50, 4)]
    preds = seg.segment(imgs, stream_ids=["a", "b", "c", "d"])
    for img, pred in zip(imgs, preds):
        assert pred.frame.image is img
        np.testing.assert_array_equal(pred.mask, seg(img, stream_id=pred.frame.source_id))


def test_warm_policy_runs_and_remembers_streams(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", nmf_init="warm", warm_steps=3, device="cpu", backend="torch")
    img = scene(96, 128)
    first = seg(img, stream_id="s")
    assert "s" in seg.bases._last
    second = seg(img, stream_id="s")
    assert (first == second).mean() > 0.5  # warm start from the converged bases: close to the cold result
    seg.reset_stream("s")
    np.testing.assert_array_equal(seg(img, stream_id="s"), first)


def test_confidence_and_logits_on_request(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    img = scene(70, 90)
    plain = seg.segment([img])[0]
    assert plain.confidence is None and plain.logits is None
    full = seg.segment([img], confidence=True, logits=True)[0]
    assert full.confidence.shape == (70, 90) and full.confidence.dtype == np.float32
    assert ((full.confidence > 0) & (full.confidence <= 1)).all()
    assert full.logits.shape[0] == 150
    np.testing.assert_array_equal(full.mask, plain.mask)


def test_many_classes_give_uint16_masks():
    model = build_segnext("segnext_t", num_classes=300).eval()
    seg = Segmenter(None, model=model, precision="fp32", device="cpu", backend="torch")
    mask = seg(scene(40, 40))
    assert mask.dtype == np.uint16 and mask.max() < 300


@pytest.mark.parametrize(
    "image,shape",
    [
        (np.zeros((1, 1, 3), np.uint8), (1, 1)),
        (np.full((30, 40), 128, np.uint8), (30, 40)),  # grey: replicated to RGB
        (np.full((30, 40, 1), 128, np.uint8), (30, 40)),
        (np.full((30, 40, 4), 128, np.uint8), (30, 40)),  # RGBA: alpha dropped
        (np.zeros((40, 30, 3), np.uint8)[:, ::2], (40, 15)),  # non-contiguous view
    ],
)
def test_documented_conversions(parity_model, image, shape):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    assert seg(image).shape == shape


def test_grey_equals_its_rgb(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    grey = scene(40, 60)[:, :, 0]
    np.testing.assert_array_equal(seg(grey), seg(np.repeat(grey[:, :, None], 3, axis=2)))


@pytest.mark.parametrize(
    "image,message",
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 3), np.float32), "float images are ambiguous"),
        (np.zeros((10, 10, 3), np.uint16), "dtype uint16"),
        (np.zeros((10, 10, 2), np.uint8), "shape"),
        (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
        ("not an image", "numpy RGB uint8 array"),
    ],
)
def test_bad_inputs_get_clear_errors(parity_model, image, message):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    with pytest.raises(InputError, match=message):
        seg(image)


def test_torch_tensor_input(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    img = scene(48, 64)
    np.testing.assert_array_equal(seg(torch.from_numpy(img)), seg(img))


def test_nan_weights_are_a_clear_error():
    model = build_segnext("segnext_t", num_classes=4).eval()
    with torch.no_grad():
        model.decode_head.conv_seg.weight.fill_(float("nan"))
    seg = Segmenter(None, model=model, precision="fp32", device="cpu", backend="torch")
    with pytest.raises(NumericalError, match="NaN"):
        seg(scene(32, 32))


def test_bad_options():
    with pytest.raises(ConfigError, match="did you mean 'nmf_init'"):
        Segmenter(None, model="segnext_t", nmf_inti="fixed")
    with pytest.raises(ConfigError, match="nmf_init must be one of"):
        Segmenter(None, model="segnext_t", nmf_init="random")
    with pytest.raises(ConfigError, match="fp16 runs on CUDA only"):
        Segmenter(None, model="segnext_t", precision="fp16", device="cpu", backend="torch")
    with pytest.raises(ConfigError, match=r"Segmenter\(config=EngineConfig"):
        Segmenter(EngineConfig(weights=None, model="segnext_t"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            Segmenter(None, model="segnext_t", device="cuda")


def test_slide_inference_averages_windows(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch", test_scale=(256, 128),
                    slide=(96, 64))  # fmt: skip
    img = scene(128, 256)
    mask = seg(img)
    assert mask.shape == (128, 256)
    whole = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch", test_scale=(256, 128))(img)
    assert 0.3 < (mask == whole).mean() < 1.0  # related but not the same computation


def _fail_above(seg: Segmenter, limit: int, error: BaseException) -> list[int]:
    """Make the forward run out of memory for more than ``limit`` frames, like an allocator would."""
    torch_model = seg.executor.model
    real, sizes = torch_model.forward, []

    def forward(x, bases, steps):
        sizes.append(int(x.shape[0]))
        if x.shape[0] > limit:
            raise error
        return real(x, bases, steps)

    torch_model.forward = forward
    return sizes


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes"),
    ],
)
def test_out_of_memory_splits_the_batch_and_remembers(parity_model, error):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    images = [scene(40, 56, seed=i) for i in range(5)]
    expected = [seg(img) for img in images]
    sizes = _fail_above(seg, 2, error)
    masks = [p.mask for p in seg.segment(images)]
    for got, want in zip(masks, expected):
        np.testing.assert_array_equal(got, want)  # same masks, each frame's own (fixed policy: batch-invariant)
    assert seg.max_group == 2 and sizes == [5, 2, 2, 1]  # 5 fails, 2 (split of 5) fits, then 2 + 1
    sizes.clear()
    seg.segment(images)
    assert sizes == [2, 2, 1]  # later batches are split up front, no new failure


def test_out_of_memory_for_one_frame_is_a_clear_error(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    _fail_above(seg, 0, RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    with pytest.raises(OutOfMemoryError, match="out of memory segmenting one 56x40 frame.*smaller test scale") as info:
        seg(scene(40, 56))
    assert isinstance(info.value, MemoryError)


def test_other_runtime_errors_are_not_mistaken_for_memory(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch")
    sizes = _fail_above(seg, 0, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        seg.segment([scene(40, 56), scene(40, 56, seed=1)])
    assert sizes == [2] and seg.max_group is None
