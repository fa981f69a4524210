"""Does streamseg's OpenVINO backend add overhead? Compare, in one run on one machine:

  bare       what a user would write by hand: the same model and weights through
             ``openvino.convert_model`` + ``compile_model(CPU, bf16, LATENCY)``, timing only
             ``infer`` on an already normalised 1x3xHxW tensor (no pre/post-processing);
  streamseg  ``Segmenter(backend="openvino")`` on an RGB uint8 frame: resize/normalise/pad,
             the forward, resize back and argmax, mask out.

    python benchmarks/openvino_bare.py [--size 512x512] [--repeats 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def median_ms(fn, repeats: int) -> float:
    from streamseg.commands.bench import _time  # the same warm-up and timing as `streamseg bench`

    return statistics.median(_time(fn, repeats, warmup=3)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    import openvino as ov

    from streamseg.engine import Segmenter, load_model
    from streamseg.synth import SceneClip

    frame = SceneClip(seed=7, size=(w, h)).frame(0)[0]
    model, _ = load_model("segnext_t_synth")
    model.eval()
    x = torch.from_numpy(((frame.astype(np.float32) - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]))
    x = x.permute(2, 0, 1)[None].float().contiguous()
    t0 = time.perf_counter()
    with torch.no_grad():
        ov_model = ov.convert_model(model, example_input=x)
    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"})
    bare_setup_s = time.perf_counter() - t0
    request = compiled.create_infer_request()
    x_np = x.numpy()
    bare = median_ms(lambda: request.infer({0: x_np}), args.repeats)

    seg = Segmenter(backend="openvino", test_scale=(max(w, h), min(w, h)))  # frames keep their size, as bare
    t0 = time.perf_counter()
    seg(frame)
    first_s = time.perf_counter() - t0
    ours = median_ms(lambda: seg(frame), args.repeats)
    result = {
        "size": args.size,
        "bare_openvino_ms": round(bare, 2),
        "streamseg_openvino_ms": round(ours, 2),
        "overhead_ratio": round(ours / bare, 3),
        "bare_convert_compile_s": round(bare_setup_s, 2),
        "streamseg_first_frame_s": round(first_s, 2),
        "openvino": str(ov.get_version()),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>26}: {v}")


if __name__ == "__main__":
    main()
