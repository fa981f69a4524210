"""``streamseg bench``: engine throughput/latency after warm-up, optionally against a plain fp32 baseline.

Several backends can be measured side by side (``--backend torch,openvino``). The baseline is the
same model and weights run the plainest way: eager fp32, contiguous NCHW, no folding, no compile.
``--bare`` adds what a user would write by hand with OpenVINO (``convert_model`` + ``compile_model``
in bf16, timing only ``infer`` on an already normalised tensor), to show what streamseg's own
pre/post-processing costs. Everything is timed in the same process in interleaved rounds, so a
machine that slows down for a while slows every contender alike. Frames are synthetic scenes
(real-looking, not noise), so argmax agreement means something.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from typing import Any, Callable

import numpy as np

from streamseg.errors import ConfigError, QuantizationError

ROUNDS = 3  # timing rounds; each contender gets repeats/ROUNDS timed calls per round


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="segnext_t", help="SegNeXt size (default segnext_t)")
    parser.add_argument("--weights", help="weights (default: the bundled model for segnext_t, else random init)")
    parser.add_argument("--size", default="512x512", help="frame size WxH (default 512x512; frames are not resized)")
    parser.add_argument("--batch", type=int, default=1, help="frames per call (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default=None,
                        help="fp32, bf16, fp16, int8 (OpenVINO), or several side by side: int8,fp32 (default: auto)")
    parser.add_argument("--calibration", default="synth",
                        help="int8: frames to calibrate on (a video, folder or URL; default: generated scenes)")
    parser.add_argument("--accuracy-floor", type=float, default=0.99,
                        help="int8: least agreement with float (default 0.99; lower it to time random-init models)")
    parser.add_argument(
        "--backend", default="auto", help="torch, openvino, auto, or several side by side: torch,openvino (default auto)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up time reported)")
    parser.add_argument("--no-fold", action="store_true", help="do not fold BatchNorm/layer scale")
    parser.add_argument("--nmf-init", default="fixed", help="reference, fixed or warm (default fixed)")
    parser.add_argument("--warm-steps", type=int, default=None, help="NMF iterations for warm starts")
    parser.add_argument("--repeats", type=int, default=12, help="timed calls per contender (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up calls")
    parser.add_argument("--baseline", action="store_true", help="also time a plain eager fp32 forward")
    parser.add_argument("--bare", action="store_true", help="also time a hand-written OpenVINO bf16 compile (CPU)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _frames(width: int, height: int, count: int) -> list[np.ndarray]:
    from streamseg.synth import SceneClip

    clip = SceneClip(seed=7, size=(width + width % 2, height + height % 2))
    return [np.ascontiguousarray(clip.frame(i * 7)[0][:height, :width]) for i in range(count)]


def _time(fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating rounds."""
    for fn in fns.values():
        _time(fn, 0, warmup)
    per_round = max(1, -(-repeats // ROUNDS))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            times[name] += _time(fn, per_round, 0)
    return {name: statistics.median(t) for name, t in times.items()}


def _choices(option: str, spec: str, allowed: tuple[str, ...]) -> list[str]:
    names = [b.strip() for b in spec.split(",") if b.strip()]
    bad = [b for b in names if b not in allowed]
    if not names or bad:
        raise ConfigError(f"{option} takes {', '.join(allowed)} or a comma-separated list, got {spec!r}")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    import torch

    from streamseg.engine import EngineConfig, Segmenter
    from streamseg.engine.device import cpu_description
    from streamseg.synth.cli import parse_size

    width, height = parse_size(args.size)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise ConfigError("--batch and --repeats must be >= 1 and --warmup >= 0")
    weights = args.weights
    if weights is None:
        weights = "segnext_t_synth" if args.model == "segnext_t" else None
    frames = _frames(width, height, max(args.batch, 4))
    batch = frames[: args.batch]
    ids = [f"s{i}" for i in range(args.batch)]
    segs: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    from streamseg.engine.config import BACKENDS, PRECISIONS

    backends = _choices("--backend", args.backend, BACKENDS)
    precisions = _choices("--precision", args.precision or "auto", PRECISIONS)
    for name, precision in [(b, p) for b in backends for p in precisions]:
        cfg = EngineConfig(
            model=args.model,
            weights=weights,
            device=args.device,
            precision=precision,
            calibration=args.calibration,
            accuracy_floor=args.accuracy_floor,
            backend=name,
            nmf_init=args.nmf_init,
            warm_steps=args.warm_steps,
            fold=not args.no_fold,
            compile=args.compile and name != "openvino",
            test_scale=(max(width, height), min(width, height)),  # frames keep their size
        )
        try:
            seg = Segmenter(config=cfg)
        except QuantizationError as exc:
            raise QuantizationError(f"{exc}; streamseg bench takes --calibration and --accuracy-floor") from exc
        label = seg.config.backend if len(precisions) == 1 else f"{seg.config.backend} {seg.precision}"
        t0 = time.perf_counter()
        seg.segment(batch, stream_ids=ids)
        results[label] = {
            "model": seg.info.variant,
            "weights": seg.info.weights,
            "size": f"{width}x{height}",
            "batch": args.batch,
            "device": str(seg.device),
            "backend": seg.config.backend,
            "precision": seg.precision,
            "fold": cfg.fold,
            "compile": cfg.compile,
            "nmf_init": cfg.nmf_init,
            "first_call_s": round(time.perf_counter() - t0, 3),
            "compile_s": round(seg.stats.compile_s, 3),
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "cpu": cpu_description(),
        }
        segs[label] = seg
    first = next(iter(segs.values()))
    timers: dict[str, Callable[[], Any]] = {
        label: (lambda s=seg: s.segment(batch, stream_ids=ids)) for label, seg in segs.items()
    }
    extra: dict[str, Any] = {}
    if args.baseline:
        timers["baseline"], reference = _baseline(first, batch)
    if args.bare:
        timers["bare_openvino"], extra["bare_convert_compile_s"] = _bare_openvino(first, batch)
    seconds = _interleaved(timers, args.repeats, args.warmup)
    for label, r in results.items():
        r["latency_ms"] = round(seconds[label] * 1000, 2)
        r["fps"] = round(args.batch / seconds[label], 2)
        if args.baseline:
            r["baseline_latency_ms"] = round(seconds["baseline"] * 1000, 2)
            r["baseline_fps"] = round(args.batch / seconds["baseline"], 2)
            r["speedup"] = round(r["fps"] / r["baseline_fps"], 3)
            r["argmax_agreement"] = round(_agreement(segs[label], batch, reference), 5)
        if args.bare:
            r["bare_openvino_latency_ms"] = round(seconds["bare_openvino"] * 1000, 2)
            r["bare_openvino_fps"] = round(args.batch / seconds["bare_openvino"], 2)
            r["vs_bare_openvino"] = round(r["fps"] / r["bare_openvino_fps"], 3)
            r.update(extra)
    _print_table(list(results.values()))
    if args.json:
        best = max(results.values(), key=lambda r: r["fps"])
        out = dict(best)
        if len(results) > 1:
            out["backends"] = results
        print(json.dumps(out))
    return 0


def _model_input(seg: Any, batch: list[np.ndarray]) -> tuple[Any, Any]:
    """The engine's own pre-processing of ``batch`` as a contiguous NCHW tensor on its device, and the geometry."""
    import torch

    from streamseg.engine.preprocess import Geometry, preprocess

    h, w = batch[0].shape[:2]
    geo = Geometry.for_frame(h, w, seg.info.test_scale)
    images = torch.from_numpy(np.stack(batch)).to(seg.device)
    return preprocess(images, geo, seg.mean, seg.std).contiguous(), geo


def _baseline(seg: Any, batch: list[np.ndarray]) -> tuple[Callable[[], Any], np.ndarray]:
    """Eager fp32, contiguous NCHW, unfolded, same weights and NMF bases: (timed call, its masks)."""
    import torch

    from streamseg.engine.preprocess import postprocess

    model = copy.deepcopy(seg.model).to(seg.device).to(memory_format=torch.contiguous_format).eval()
    x, geo = _model_input(seg, batch)
    bases = seg.bases.fixed_bases().to(seg.device).expand(len(batch), -1, -1)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            out = model(x, nmf_bases=bases)
        if seg.device.type == "cuda":
            torch.cuda.synchronize()
        return out

    with torch.inference_mode():
        ids, _ = postprocess(forward().float(), geo)
    return forward, ids.cpu().numpy()


def _agreement(seg: Any, batch: list[np.ndarray], reference: np.ndarray) -> float:
    """Share of pixels where the engine's mask equals the baseline's (fresh streams: the same fixed bases)."""
    ids = [f"baseline{i}" for i in range(len(batch))]
    masks = np.stack([p.mask for p in seg.segment(batch, stream_ids=ids)])
    for sid in ids:
        seg.reset_stream(sid)
    return float((masks == reference).mean())


def _bare_openvino(seg: Any, batch: list[np.ndarray]) -> tuple[Callable[[], Any], float]:
    """The same model and weights the way a user would call OpenVINO by hand (bf16, latency hint)."""
    import warnings

    import torch

    from streamseg.engine.openvino_ir import import_openvino

    ov = import_openvino()
    x = _model_input(seg, batch)[0].cpu()
    model = copy.deepcopy(seg.model).cpu().float().eval()
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(model, example_input=x)
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"})
    setup_s = round(time.perf_counter() - t0, 2)
    request = compiled.create_infer_request()
    x_np = x.numpy()
    return (lambda: request.infer({0: x_np})), setup_s


def _print_table(results: list[dict[str, Any]]) -> None:
    r0 = results[0]
    rows = [
        ("model", [f"{r0['model']} ({r0['weights'] or 'random init'})"]),
        ("input", [f"{r0['size']} x batch {r0['batch']} ({r0['threads']} threads)"]),
        ("cpu", [r0["cpu"]]),
        ("backend", [f"{r['backend']} on {r['device']}" for r in results]),
        ("config", [f"{r['precision']} fold={r['fold']} compile={r['compile']} nmf={r['nmf_init']}" for r in results]),
        ("latency", [f"{r['latency_ms']:.1f} ms per batch" for r in results]),
        ("throughput", [f"{r['fps']:.2f} frames/s" for r in results]),
        ("first call", [f"{r['first_call_s']:.2f} s" + (f" (compile {r['compile_s']:.1f} s)" if r["compile_s"] else "")
                        for r in results]),
    ]
    if "baseline_fps" in r0:
        rows += [
            ("baseline", [f"{r0['baseline_latency_ms']:.1f} ms, {r0['baseline_fps']:.2f} frames/s (eager fp32 NCHW)"]),
            ("speedup", [f"{r['speedup']:.2f}x" for r in results]),
            ("argmax agree", [f"{100 * r['argmax_agreement']:.3f} %" for r in results]),
        ]
    if "bare_openvino_fps" in r0:
        rows += [
            ("bare openvino", [f"{r0['bare_openvino_latency_ms']:.1f} ms, {r0['bare_openvino_fps']:.2f} frames/s (infer only)"]),
            ("vs bare", [f"{r['vs_bare_openvino']:.2f}x" for r in results]),
        ]
    rows.append(("", [f"median of {r0['repeats']} calls, {ROUNDS} interleaved rounds"]))
    key_width = max(len(k) for k, _ in rows)
    col = max(len(v) for _, vals in rows[2:-1] for v in vals) if len(results) > 1 else 0
    for key, values in rows:
        cells = values if len(values) == len(results) else values[:1]
        print(f"{key:<{key_width}}  " + "  ".join(f"{v:<{col}}" for v in cells).rstrip())
