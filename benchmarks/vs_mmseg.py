"""streamseg against mmsegmentation 1.2.2's own SegNeXt-T, side by side in one process.

The issues' speed targets are multiples of mmseg's eager fp32 implementation; this measures
that reference on the machine at hand instead of quoting a number from another machine.
Same weights (a 150-class ADE20K-layout checkpoint, or any mmseg-layout SegNeXt-T checkpoint such
as the bundled model's), same real-looking frame, timed in interleaved rounds; int8 is calibrated
on generated scenes (and skipped, saying why, if its accuracy check refuses it). Also reports how often each streamseg configuration's mask agrees with
mmseg's, with both drawing the NMF bases from the same seeded generator.

mmseg must be importable next to streamseg (a separate virtual environment keeps it apart):

    python -m venv --system-site-packages /tmp/mmseg-venv
    /tmp/mmseg-venv/bin/pip install mmsegmentation==1.2.2 mmcv-lite==2.1.0 mmengine==0.10.7 ftfy regex
    python ../shared/parity/make_checkpoint.py ../shared/parity/segnext_t/keys.json 1001 /tmp/segnext_t.pth
    /tmp/mmseg-venv/bin/python benchmarks/vs_mmseg.py --checkpoint /tmp/segnext_t.pth [--size 512x512] [--json]

This script imports torch before streamseg, so torch's OpenMP threads keep their default
spin-waiting, unlike under ``streamseg run``/``bench`` (PASSIVE); the header line prints the policy
in effect. Start with ``OMP_WAIT_POLICY=PASSIVE`` to time the torch rows as streamseg runs them.

mmcv-lite has no compiled ops, yet mmseg imports a few at start-up (SegNeXt uses none of them),
so a stub module stands in for ``mmcv.ops``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types

import numpy as np
import torch


def stub_mmcv_ops() -> None:
    ops = types.ModuleType("mmcv.ops")

    def missing(name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)

        def fail(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"mmcv.ops.{name} needs the full mmcv; SegNeXt does not use it")

        return type(name, (), {"__init__": fail, "__call__": fail})

    ops.__getattr__ = missing  # type: ignore[attr-defined]
    sys.modules.setdefault("mmcv.ops", ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="SegNeXt-T checkpoint in mmseg layout (150 classes)")
    parser.add_argument("--size", default="512x512", help="frame size WxH (default 512x512)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    stub_mmcv_ops()
    import mmseg
    from mmengine import Config
    from mmseg.apis import inference_model, init_model

    from streamseg.commands.bench import _interleaved
    from streamseg.engine import Segmenter
    from streamseg.engine.device import cpu_description, cpu_has_native_bf16
    from streamseg.synth import SceneClip

    config = os.path.join(os.path.dirname(mmseg.__file__), ".mim/configs/segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py")
    cfg = Config.fromfile(config)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    cfg.model.decode_head.num_classes = int(state["decode_head.conv_seg.weight"].shape[0])
    meta_scale = None
    if cfg.model.decode_head.num_classes != 150:  # e.g. the bundled model's training checkpoint
        meta_scale = (max(w, h), min(w, h))  # frames keep their size, as in streamseg bench
        cfg.test_pipeline[1]["scale"] = meta_scale
    reference = init_model(cfg, args.checkpoint, device="cpu")
    rgb = SceneClip(seed=7, size=(w + w % 2, h + h % 2)).frame(0)[0][:h, :w]
    rgb = np.ascontiguousarray(rgb)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # mmseg's inference_model takes OpenCV-order arrays

    float_ = "bf16" if cpu_has_native_bf16() else "fp32"  # bf16 without native support is emulated: slower than fp32
    contenders = {
        "streamseg openvino int8": dict(backend="openvino", precision="int8", calibration="synth"),
        f"streamseg openvino {float_}": dict(backend="openvino", precision=float_),
        "streamseg torch bf16": dict(backend="torch", precision="bf16"),
        "streamseg torch fp32": dict(backend="torch", precision="fp32"),
    }
    if float_ != "bf16":
        del contenders["streamseg torch bf16"]
    segs = {}
    for name, options in contenders.items():
        try:
            segs[name] = Segmenter(args.checkpoint, model="segnext_t", test_scale=meta_scale, **options)
        except Exception as exc:  # noqa: BLE001 - e.g. OpenVINO not installed: measure the rest
            print(f"skipping {name}: {exc}", file=sys.stderr)

    def mmseg_mask() -> np.ndarray:
        return inference_model(reference, bgr).pred_sem_seg.data[0].numpy()

    timers = {"mmseg inference_model (eager fp32)": mmseg_mask}
    timers.update({name: (lambda s=seg: s(rgb)) for name, seg in segs.items()})
    seconds = _interleaved(timers, args.repeats, warmup=2)

    torch.manual_seed(0)
    ref_mask = mmseg_mask()
    mmseg_s = seconds["mmseg inference_model (eager fp32)"]
    rows = []
    for name, s in seconds.items():
        row = {"name": name, "ms": round(s * 1000, 1), "x_mmseg": round(mmseg_s / s, 2)}
        if name in segs:  # same seeded NMF draw as mmseg: the reference policy
            twin = Segmenter(args.checkpoint, model="segnext_t", test_scale=meta_scale, nmf_init="reference", **contenders[name])
            torch.manual_seed(0)
            row["agreement"] = round(float((twin(rgb) == ref_mask).mean()), 5)
        rows.append(row)
    policy = os.environ.get("OMP_WAIT_POLICY") or "OpenMP default"
    print(f"{w}x{h}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY {policy}, "
          f"mmseg {mmseg.__version__}, torch {torch.__version__}, {cpu_description()}")
    for r in rows:
        agree = f"  agreement {100 * r['agreement']:.3f} %" if "agreement" in r else ""
        print(f"{r['name']:<36} {r['ms']:>8.1f} ms  {r['x_mmseg']:>5.2f}x mmseg{agree}")
    if args.json:
        print(json.dumps({"size": args.size, "cpu": cpu_description(), "rows": rows}))


if __name__ == "__main__":
    main()
