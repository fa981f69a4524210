"""``streamseg bench``: engine throughput/latency after warm-up, optionally against a plain fp32 baseline.

The baseline is the same model and weights run the plainest way: eager fp32,
contiguous NCHW, no folding, no compile, timed in the same process right after.
Frames are synthetic scenes (real-looking, not noise), so argmax agreement means something.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="segnext_t", help="SegNeXt size (default segnext_t)")
    parser.add_argument("--weights", help="weights (default: the bundled model for segnext_t, else random init)")
    parser.add_argument("--size", default="512x512", help="frame size WxH (default 512x512; frames are not resized)")
    parser.add_argument("--batch", type=int, default=1, help="frames per call (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default=None, help="fp32, bf16, fp16 (default: fastest for the device)")
    parser.add_argument("--backend", default="auto", help="torch, openvino or auto (default: the fastest installed for the device)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up time reported)")
    parser.add_argument("--no-fold", action="store_true", help="do not fold BatchNorm/layer scale")
    parser.add_argument("--nmf-init", default="fixed", help="reference, fixed or warm (default fixed)")
    parser.add_argument("--warm-steps", type=int, default=None, help="NMF iterations for warm starts")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up calls")
    parser.add_argument("--baseline", action="store_true", help="also time a plain eager fp32 forward")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _frames(width: int, height: int, count: int) -> list[np.ndarray]:
    from streamseg.synth import SceneClip

    clip = SceneClip(seed=7, size=(width + width % 2, height + height % 2))
    return [np.ascontiguousarray(clip.frame(i * 7)[0][:height, :width]) for i in range(count)]


def _time(fn: Any, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def run(args: argparse.Namespace) -> int:
    import torch

    from streamseg.engine import EngineConfig, Segmenter
    from streamseg.synth.cli import parse_size

    width, height = parse_size(args.size)
    weights = args.weights
    if weights is None:
        weights = "segnext_t_synth" if args.model == "segnext_t" else None
    cfg = EngineConfig(
        model=args.model,
        weights=weights,
        device=args.device,
        precision=args.precision or "auto",
        backend=args.backend,
        nmf_init=args.nmf_init,
        warm_steps=args.warm_steps,
        fold=not args.no_fold,
        compile=args.compile,
        test_scale=(max(width, height), min(width, height)),  # frames keep their size
    )
    seg = Segmenter(config=cfg)
    frames = _frames(width, height, max(args.batch, 4))
    batch = frames[: args.batch]
    ids = [f"s{i}" for i in range(args.batch)]
    t0 = time.perf_counter()
    seg.segment(batch, stream_ids=ids)
    first_call_s = time.perf_counter() - t0
    times = _time(lambda: seg.segment(batch, stream_ids=ids), args.repeats, args.warmup)
    latency = statistics.median(times)
    result: dict[str, Any] = {
        "model": seg.info.variant,
        "weights": seg.info.weights,
        "size": f"{width}x{height}",
        "batch": args.batch,
        "device": str(seg.device),
        "backend": cfg.backend,
        "precision": seg.precision,
        "fold": cfg.fold,
        "compile": cfg.compile,
        "nmf_init": cfg.nmf_init,
        "latency_ms": round(latency * 1000, 2),
        "fps": round(args.batch / latency, 2),
        "first_call_s": round(first_call_s, 3),
        "compile_s": round(seg.stats.compile_s, 3),
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if args.baseline:
        result.update(_baseline(seg, batch, args))
        result["speedup"] = round(result["fps"] / result["baseline_fps"], 3)
    _print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


def _baseline(seg: Any, batch: list[np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """Eager fp32, contiguous NCHW, unfolded, same weights and same NMF bases; and argmax agreement."""
    import torch

    from streamseg.engine.preprocess import Geometry, postprocess, preprocess

    import copy

    model = copy.deepcopy(seg.model).to(seg.device).to(memory_format=torch.contiguous_format).eval()
    h, w = batch[0].shape[:2]
    geo = Geometry.for_frame(h, w, seg.info.test_scale)
    images = torch.from_numpy(np.stack(batch)).to(seg.device)
    x = preprocess(images, geo, seg.mean, seg.std).contiguous()
    bases = seg.bases.fixed_bases().to(seg.device).expand(len(batch), -1, -1)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            out = model(x, nmf_bases=bases)
        if seg.device.type == "cuda":
            torch.cuda.synchronize()
        return out

    times = _time(forward, args.repeats, args.warmup)
    latency = statistics.median(times)
    with torch.inference_mode():
        ref_ids, _ = postprocess(forward().float(), geo)
    new_streams = [f"baseline{i}" for i in range(len(batch))]  # fresh streams start from the fixed bases
    masks = np.stack([p.mask for p in seg.segment(batch, stream_ids=new_streams)])
    agreement = float((masks == ref_ids.cpu().numpy()).mean())
    fps = len(batch) / latency
    return {
        "baseline_latency_ms": round(latency * 1000, 2),
        "baseline_fps": round(fps, 2),
        "argmax_agreement": round(agreement, 5),
    }


def _print_table(r: dict[str, Any]) -> None:
    rows = [
        ("model", f"{r['model']} ({r['weights'] or 'random init'})"),
        ("input", f"{r['size']} x batch {r['batch']} on {r['device']} ({r['threads']} threads)"),
        ("config", f"{r['backend']} {r['precision']} fold={r['fold']} compile={r['compile']} nmf={r['nmf_init']}"),
        ("latency", f"{r['latency_ms']:.1f} ms per batch (median of {r['repeats']})"),
        ("throughput", f"{r['fps']:.2f} frames/s"),
        ("first call", f"{r['first_call_s']:.2f} s" + (f" (compile {r['compile_s']:.1f} s)" if r["compile_s"] else "")),
    ]
    if "baseline_fps" in r:
        rows += [
            ("baseline", f"{r['baseline_latency_ms']:.1f} ms, {r['baseline_fps']:.2f} frames/s (eager fp32 NCHW)"),
            ("speedup", f"{r['speedup']:.2f}x"),
            ("argmax agree", f"{100 * r['argmax_agreement']:.3f} %"),
        ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
