"""Where OpenVINO spends a frame: its per-layer counters for the engine's own compiled graph.

Compiles the graph the OpenVINO backend runs (same IR, NMF kept in f32, same options) with
``PERF_COUNT`` on, runs it on a generated frame and sums the layer times by (layer type,
kernel), e.g. ``GroupConvolution brgconv_avx512_dw_bf16`` for the depthwise convolutions or
``Convolution brgconv_avx512_amx_1x1_bf16`` where AMX runs the 1x1 ones. A diagnostic: it
reaches into the backend's private IR cache on purpose.

    python benchmarks/openvino_layers.py [--size 512x512] [--repeats 10] [--top 12] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="512x512", help="frame size WxH (the frame is not resized)")
    parser.add_argument("--weights", default="segnext_t_synth", help="weights (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--top", type=int, default=12, help="how many (layer, kernel) rows to print")
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp32 or int8 (calibrated on generated scenes)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    import openvino as ov

    from streamseg.engine import Segmenter
    from streamseg.engine.openvino_ir import core
    from streamseg.synth import SceneClip

    seg = Segmenter(args.weights, backend="openvino", precision=args.precision, calibration="synth",
                    test_scale=(max(w, h), min(w, h)))  # fmt: skip
    rgb = np.ascontiguousarray(SceneClip(seed=7, size=(w + w % 2, h + h % 2)).frame(0)[0][:h, :w])
    seg(rgb)  # converts the model (or reads the cached IR) and compiles it for this size
    fwd = seg.executor.forward
    (b, ph, pw, steps), *_ = fwd._compiled  # the one input shape compiled just now
    model = fwd._graphs.get(steps, fwd.channels, fwd.rank).clone()  # the int8 graph under precision int8
    model.reshape({0: ov.PartialShape([b, ph, pw, 3]), 1: ov.PartialShape([b, fwd.channels, fwd.rank])})
    config = {k: v for k, v in fwd._config.items() if k != "CACHE_DIR"}
    compiled = core().compile_model(model, "CPU", {**config, "PERF_COUNT": "YES"})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).uniform(0, 255, (b, ph, pw, 3)).astype(np.float32)
    bases = np.full((b, fwd.channels, fwd.rank), fwd.channels**-0.5, np.float32)
    for _ in range(3):
        request.infer([x, bases])
    totals: collections.Counter[tuple[str, str]] = collections.Counter()
    wall = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        request.infer([x, bases])
        wall.append(time.perf_counter() - t0)
        for p in request.get_profiling_info():
            totals[(p.node_type, p.exec_type)] += p.real_time.total_seconds() * 1000 / args.repeats
    rows = [{"layer": k[0], "kernel": k[1], "ms": round(v, 2)} for k, v in totals.most_common() if v >= 0.005]
    summed = sum(totals.values())
    print(f"graph input {pw}x{ph}, {fwd.precision}: {statistics.median(wall) * 1000:.1f} ms a call, layers sum to {summed:.1f} ms")
    for r in rows[: args.top]:
        print(f"{r['ms']:8.2f} ms  {r['layer']:<18} {r['kernel']}")
    if args.json:
        print(json.dumps({"size": args.size, "call_ms": round(statistics.median(wall) * 1000, 2), "rows": rows}))


if __name__ == "__main__":
    main()
