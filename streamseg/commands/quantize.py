"""``streamseg quantize --weights W --calibration PATH [--out DIR]``: int8 for the OpenVINO backend, ahead of time.

Quantizes on calibration frames, checks the result against the float model on held-out frames
(refusing it below ``--accuracy-floor``) and prints what it measured. The quantized model is
cached either way, so a later ``--set engine.precision=int8`` run with the same weights and
calibration starts at once; ``--out DIR`` also writes a folder that loads as weights
(``--weights DIR``: int8 on OpenVINO, the float weights everywhere else).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from streamseg.errors import ConfigError

MANIFEST = "streamseg.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=None, help="registered name, checkpoint path or URL (default: the bundled model)")
    parser.add_argument("--model", default=None, help="SegNeXt size when the weights do not say")
    parser.add_argument("--calibration", default=None,
                        help="a video, folder, glob or stream like what will be segmented ('synth': generated scenes)")
    parser.add_argument("--frames", type=int, default=300, help="calibration frames (a fifth held out for the check)")
    parser.add_argument("--accuracy-floor", type=float, default=0.99, help="least argmax agreement with float (0.99)")
    parser.add_argument("--test-scale", default=None, help="WxH the frames are resized to (default: the weights')")
    parser.add_argument("--out", default=None, help="also write a folder that loads as weights")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from streamseg.engine import EngineConfig, Segmenter
    from streamseg.synth.cli import parse_size

    if args.out and Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise ConfigError(f"{args.out} is not empty: give a new folder for the quantized model")
    options = {} if args.weights is None else {"weights": args.weights}
    if args.test_scale:
        options["test_scale"] = parse_size(args.test_scale)
    cfg = EngineConfig(model=args.model, backend="openvino", device="cpu", precision="int8", calibration=args.calibration,
                       calibration_frames=args.frames, accuracy_floor=args.accuracy_floor, **options)  # fmt: skip
    seg = Segmenter(config=cfg)
    forward = seg.executor.forward  # type: ignore[attr-defined]
    report = forward.int8.report
    summary = {"weights": seg.info.weights, **asdict(report), "cache": str(forward.int8.directory)}
    if args.out:
        summary["out"] = str(write_quantized(Path(args.out), seg, forward.int8.directory, summary))
    print(
        f"streamseg quantize: {seg.info.variant} ({seg.info.weights}) int8 agrees with float on "
        f"{100 * report.frames_agreement:.2f} % of the pixels of {report.frames} held-out frames "
        f"and {100 * report.scenes_agreement:.2f} % of {report.scenes} generated scenes "
        f"(calibrated on {report.calibrated_on}; overflow fix {report.overflow_fix}; "
        f"{'from the cache' if report.cached else f'{report.seconds:.0f} s'})"
    )
    if args.json:
        print(json.dumps(summary))
    return 0


def write_quantized(out: Path, seg: object, int8_dir: Path, summary: dict) -> Path:
    """A folder with the float weights (safetensors), the int8 graph and a manifest: it loads as weights."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    info = seg.info  # type: ignore[attr-defined]
    meta = {"variant": info.variant, "classes": list(info.classes), "palette": info.palette.tolist(),
            "nmf_rank": info.nmf_rank, "test_scale": list(info.test_scale) if info.test_scale else None}  # fmt: skip
    state = {k: v.detach().cpu().contiguous() for k, v in seg.model.state_dict().items()}  # type: ignore[attr-defined]
    save_file(state, str(out / "weights.safetensors"), metadata={k: json.dumps(v) for k, v in meta.items()})
    shutil.copytree(int8_dir, out / "openvino_int8")
    manifest = {"weights": "weights.safetensors", "int8": "openvino_int8", "report": summary}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out
