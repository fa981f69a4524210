"""The CUDA path: pinned staging, copy/compute streams, batches in flight. Skips without a CUDA device."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamseg import draw
from streamseg.engine import Segmenter
from streamseg.sinks.encode import fit_frame
from streamseg.types import Batch, Frame

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)"),
]


def _frames(n, h=120, w=160):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return [np.ascontiguousarray(np.kron(np.roll(base, i, axis=1), np.ones((8, 8, 1), np.uint8))) for i in range(n)]


def test_cuda_fp32_matches_cpu_fp32(parity_model):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    frames = _frames(3)
    cpu = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch").segment(frames)
    gpu = Segmenter(None, model=parity_model, precision="fp32", device="cuda").segment(frames)
    for a, b in zip(cpu, gpu):
        assert (a.mask == b.mask).mean() > 0.999


def test_reference_policy_draws_on_the_cpu_generator(parity_model):
    frames = _frames(1)
    torch.manual_seed(0)
    cpu = Segmenter(None, model=parity_model, precision="fp32", device="cpu", nmf_init="reference", backend="torch").segment(frames)
    torch.manual_seed(0)
    gpu = Segmenter(None, model=parity_model, precision="fp32", device="cuda", nmf_init="reference").segment(frames)
    assert (cpu[0].mask == gpu[0].mask).mean() > 0.999


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_in_flight_batches_keep_order_and_agree(parity_model, precision):
    seg = Segmenter(None, model=parity_model, precision=precision, device="cuda", in_flight=3)
    ref = Segmenter(None, model=parity_model, precision="fp32", device="cuda")
    frames = _frames(12)
    out = []
    for i in range(0, 12, 2):
        seg.submit(Batch(tuple(Frame(image=f, index=i + j) for j, f in enumerate(frames[i : i + 2]))))
        for done in seg.poll():
            out.extend(done)
    for done in seg.flush():
        out.extend(done)
    assert [p.frame.index for p in out] == list(range(12))
    for pred, frame in zip(out, frames):
        assert pred.mask.dtype == np.uint8
        assert (pred.mask == ref(frame)).mean() > 0.98


def test_tensor_input_already_on_device(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp32", device="cuda")
    frame = _frames(1)[0]
    np.testing.assert_array_equal(seg(torch.from_numpy(frame).cuda()), seg(frame))


def _batch(frames, start=0):
    return Batch(tuple(Frame(image=f, index=start + j) for j, f in enumerate(frames)))


@pytest.mark.parametrize("nmf_init", ["fixed", "warm", "reference"])
def test_launch_path_never_waits_for_the_device(parity_model, nmf_init):
    """submit() with batches in flight: any hidden synchronisation (a pageable upload, a .item()) raises."""
    seg = Segmenter(None, model=parity_model, precision="fp16", device="cuda", in_flight=2, nmf_init=nmf_init)
    seg.draw_views([draw.View()])
    frames = _frames(6, h=90, w=160)
    seg.predict(_batch(frames[:2]))  # first shapes, allocator and pinned pools warmed
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        seg.submit(_batch(frames[2:4], 2))
        seg.submit(_batch(frames[4:6], 4))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    out = [p for done in seg.flush() for p in done]
    assert [p.frame.index for p in out] == [2, 3, 4, 5]


def test_device_resize_keeps_fp32_masks_equal_to_the_cpu_engine(parity_model):
    """Frames go up at full size and are resized on the GPU bit-exactly as OpenCV does on the host."""
    torch.backends.cudnn.allow_tf32 = False
    frames = _frames(2, h=200, w=360)  # resized to the test scale on the device
    cpu = Segmenter(None, model=parity_model, precision="fp32", device="cpu", backend="torch").segment(frames)
    gpu = Segmenter(None, model=parity_model, precision="fp32", device="cuda").segment(frames)
    for a, b in zip(cpu, gpu):
        assert (a.mask == b.mask).mean() > 0.999


def test_views_drawn_on_the_device_match_the_host_drawing(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp16", device="cuda")
    views = [draw.View(), draw.View("side_by_side", 0.5, "rgb24")]
    assert seg.draw_views(views)
    frame = _frames(1, h=91, w=161)[0]  # odd sides: the I420 planes are padded like the host path
    (pred,) = seg.predict(_batch([frame]))
    host = draw.render(frame, pred.mask, seg.palette)
    want = cv2.cvtColor(fit_frame(host, (161, 91), (2, 2)), cv2.COLOR_RGB2YUV_I420)
    assert np.abs(pred.rendered[views[0]].astype(int) - want.astype(int)).max() <= 1
    np.testing.assert_array_equal(pred.rendered[views[1]], draw.side_by_side(frame, pred.mask, seg.palette))


def test_cuda_graphs_give_the_eager_masks_for_every_batch_size(parity_model):
    """Groups of 1..5 frames (5 runs in the bucket of 8, padded with its last frame): masks equal to eager;
    every bucket up to the group's is captured when a frame size first appears, its time reported."""
    graphs = Segmenter(None, model=parity_model, precision="fp16", device="cuda", cuda_graphs="on")
    eager = Segmenter(None, model=parity_model, precision="fp16", device="cuda", cuda_graphs="off")
    frames = _frames(5, h=72, w=96)
    for n in (5, 1, 2, 3):
        got = graphs.predict(_batch(frames[:n]))
        want = eager.predict(_batch(frames[:n]))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.mask, b.mask)
    assert graphs.stats.compile_s > 0 and eager.stats.compile_s == 0
    assert graphs.executor.model.graphs.enabled


def test_single_frame_through_a_graph_is_fast(parity_model):
    seg = Segmenter(None, model=parity_model, precision="fp16", device="cuda")
    frame = _frames(1, h=512, w=512)[0]
    seg(frame)
    import time

    t0 = time.perf_counter()
    for _ in range(20):
        seg(frame)
    assert (time.perf_counter() - t0) / 20 < 0.05  # a loose bound: the benchmark (gpu_check) measures it
