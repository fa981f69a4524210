"""What the NMF initialisation policy does to speed, accuracy and frame-to-frame stability.

For each policy (``reference``, ``fixed``, ``warm`` with the model's 7 iterations and with fewer),
segments the same generated clip frame by frame, as a stream, and reports:

  ms/frame   median time of one synchronous ``segmenter(frame)`` call
  miou       against the clip's ground truth
  flicker    share of pixels whose predicted class changes between consecutive frames while the
             ground truth there does not (lower is steadier)
  batch      whether a stream's first frame gives the same mask alone and in a batch of 4 (bf16
             kernels may round a rare pixel differently per batch size even with ``fixed``)

    python benchmarks/nmf_policies.py [--frames 60] [--size 640x360] [--backend openvino] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def run_policy(frames, gts, backend: str, policy: str, steps: int | None) -> dict:
    from streamseg.engine import Segmenter
    from streamseg.metrics import ConfusionMatrix
    from streamseg.synth import CLASSES

    seg = Segmenter(backend=backend, nmf_init=policy, warm_steps=steps)
    seg(frames[0], stream_id="warmup")
    masks, times = [], []
    for f in frames:
        t0 = time.perf_counter()
        masks.append(seg(f, stream_id="clip"))
        times.append(time.perf_counter() - t0)
    cm = ConfusionMatrix(len(CLASSES))
    for m, g in zip(masks, gts):
        cm.update(m, g)
    changed = steady = 0
    for i in range(1, len(masks)):
        still = (gts[i] == gts[i - 1]) & (gts[i] != 255)
        steady += int(still.sum())
        changed += int((still & (masks[i] != masks[i - 1])).sum())
    fresh = [f"b{i}" for i in range(4)]
    alone = [seg(f, stream_id=s) for f, s in zip(frames[:4], fresh)]
    for s in fresh:
        seg.reset_stream(s)
    batched = [p.mask for p in seg.segment(frames[:4], stream_ids=fresh)]
    return {
        "policy": policy if steps is None else f"{policy} ({steps} steps)",
        "ms_per_frame": round(statistics.median(times) * 1000, 1),
        "miou": round(cm.miou(), 4),
        "flicker": round(changed / max(steady, 1), 5),
        "batch_invariant": all(np.array_equal(a, b) for a, b in zip(alone, batched)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--backend", default="auto", help="torch, openvino or auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from streamseg.synth import SceneClip

    w, h = (int(v) for v in args.size.lower().split("x"))
    clip = SceneClip(seed=args.seed, size=(w, h), fps=30)
    pairs = list(clip.frames(args.frames))
    frames, gts = [p[0] for p in pairs], [p[1] for p in pairs]
    rows = [
        run_policy(frames, gts, args.backend, policy, steps)
        for policy, steps in (("reference", None), ("fixed", None), ("warm", None), ("warm", 3), ("warm", 1))
    ]
    print(f"{'policy':<18}{'ms/frame':>10}{'miou':>8}{'flicker':>10}  batch-invariant")
    for r in rows:
        print(f"{r['policy']:<18}{r['ms_per_frame']:>10}{r['miou']:>8}{r['flicker']:>10}  {r['batch_invariant']}")
    if args.json:
        print(json.dumps({"frames": args.frames, "size": args.size, "backend": args.backend, "policies": rows}))


if __name__ == "__main__":
    main()
