"""int8 on the OpenVINO backend: calibration frames, NNCF post-training quantization, an accuracy guard, a cache.

The converted float graph (:mod:`.openvino_ir`) is quantized by NNCF on calibration frames run
through the engine's own preprocessing. The NMF stays in float (its nodes are ignored by name; an
int8 NMF measurably loses agreement), and NNCF's overflow fix is on where the CPU has no VNNI
(8-bit dot products then go through 16-bit sums that can saturate). Every quantization is
checked on two sets: a fifth of the calibration frames, held out, and a few generated scenes
never calibrated on. A calibration set that covers too little (uniform frames, a camera's black
start-up) agrees with itself, so its held-out frames cannot tell; the scenes can. The int8
model's argmax must agree with the float model's on at least ``accuracy_floor`` of the pixels of
each set, or nothing is used and a :class:`QuantizationError` says what was measured and what to
do. Each set counts on its own: pooled, 60 held-out grey frames outvoted 16 scenes and a grey
calibration passed. The quantized graph and what was measured are cached, keyed by the float
graph, the calibration frames (named, not read: a cached model needs none), NNCF and OpenVINO, so
calibration runs once.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamseg.engine.device import cpu_has_vnni
from streamseg.engine.loading import ModelInfo
from streamseg.engine.openvino_ir import NMF_PREFIX, IRCache, core, import_openvino
from streamseg.engine.preprocess import Geometry, preprocess, resize_on_host
from streamseg.errors import BackendUnavailableError, ConfigError, QuantizationError

__all__ = ["Calibration", "CalibrationPlan", "Int8Model", "Int8Report", "calibration_images"]

log = logging.getLogger(__name__)

_FORMAT = 2  # bump when the quantization recipe or its check changes: old cache entries are then ignored
SYNTH = "synth"  # calibration on generated scenes (what the bundled model was trained on)
_PROBE_SCENES = 16  # generated scenes checked besides the held-out frames
# The scenes are checked at this test scale at least: at 64x64 a scene is a few output pixels of one or two
# classes, and a model calibrated on uniform grey frames still agreed on 99.8 % of them (88 % at 320x180).
_PROBE_SCALE = (320, 180)


def calibration_images(spec: str | None, info: ModelInfo, count: int) -> list[np.ndarray]:
    """RGB frames to calibrate on: the first ``count`` of ``spec`` (a video, folder, glob or URL) or generated
    scenes (``"synth"``, and the default for the bundled model)."""
    if spec is None and (info.weights or "").endswith("_synth"):
        spec = SYNTH
    if spec is None:
        raise ConfigError(
            "int8 needs calibration frames: set engine.calibration to a video, a folder of images or a stream "
            "that looks like what will be segmented (streamseg run uses its first source when this is unset)"
        )
    if spec == SYNTH:
        return _scenes(count, first_seed=90_000)
    from streamseg.sources import open_source

    source = open_source(spec, source_id="calibration")
    source.open()
    images: list[np.ndarray] = []
    try:
        while len(images) < count:
            try:
                frame = source.read(timeout=10.0)
            except TimeoutError:
                break
            if frame is None:
                break
            images.append(frame.image)
    finally:
        source.close()
    if len(images) < 16:
        raise ConfigError(
            f"calibration source {spec!r} gave {len(images)} frames; int8 calibration needs at least 16: point "
            "engine.calibration at a longer video or a folder of frames like the ones you segment, or run in float "
            "(engine.precision bf16 or fp32)"
        )
    return images


def _scenes(count: int, *, first_seed: int) -> list[np.ndarray]:
    """Generated scenes, 30 of a clip each (seeds far from the bundled model's training and evaluation)."""
    from streamseg.synth import SceneClip

    return [SceneClip(seed=first_seed + i // 30, size=(640, 360)).frame(7 * (i % 30))[0] for i in range(count)]


@dataclass(frozen=True)
class Calibration:
    """Model inputs for calibration and for the accuracy check, made by the engine's own preprocessing."""

    inputs: list[tuple[np.ndarray, np.ndarray]]  # (NHWC float32 frame, NMF bases)
    held_out: list[tuple[np.ndarray, np.ndarray]]  # the last fifth of the frames
    scenes: list[tuple[np.ndarray, np.ndarray]]  # generated scenes, never calibrated on
    valid: tuple[int, int]  # output rows/columns that are not padding
    scenes_valid: tuple[int, int]

    @classmethod
    def from_images(cls, images: list[np.ndarray], info: ModelInfo, bases: torch.Tensor) -> "Calibration":
        import cv2

        h, w = images[0].shape[:2]
        geo = Geometry.for_frame(h, w, info.test_scale)
        mean, std = torch.tensor(info.mean), torch.tensor(info.std)

        def model_input(image: np.ndarray, at: Geometry) -> tuple[np.ndarray, np.ndarray]:
            x = preprocess(torch.from_numpy(np.stack(resize_on_host([image], at))), at, mean, std)
            return x.permute(0, 2, 3, 1).contiguous().numpy(), bases[None].numpy()

        # one input shape: frames of a folder may differ in size
        items = [model_input(im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA), geo)
                 for im in images]  # fmt: skip
        probes = _scenes(_PROBE_SCENES, first_seed=95_000)  # never calibrated on, even with calibration "synth"
        ts = info.test_scale
        scale = None if ts is None else (max(ts[0], _PROBE_SCALE[0]), max(ts[1], _PROBE_SCALE[1]))
        probe_geo = Geometry.for_frame(*probes[0].shape[:2], scale)
        held = max(4, len(images) // 5)
        return cls(
            items[: len(images) - held],
            items[len(images) - held :],
            [model_input(image, probe_geo) for image in probes],
            valid=geo.logits_valid,
            scenes_valid=probe_geo.logits_valid,
        )


@dataclass(frozen=True)
class CalibrationPlan:
    """Which frames int8 calibrates on, named without reading them: a cached model needs none read."""

    spec: str | None
    count: int
    info: ModelInfo
    bases: torch.Tensor

    @property
    def key(self) -> str:
        """What the frames are: generated scenes, a file's or folder's identity (path, size, time), or a
        stream's URL (a live source cannot be read the same way twice: its URL stands for it)."""
        spec = self.spec if self.spec is not None or not (self.info.weights or "").endswith("_synth") else SYNTH
        what = spec or "none"
        if spec not in (None, SYNTH):
            paths = sorted(glob.glob(spec, recursive=True)) if glob.has_magic(spec) else [spec]
            files = [p for path in paths for p in (sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)])]
            stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
            what = f"{spec}|{stats}" if stats else spec
        geometry = f"{self.info.test_scale}|{self.info.mean}|{self.info.std}|{self.count}"
        return hashlib.sha256(f"{what}|{geometry}|{self.bases.sum().item():.6f}".encode()).hexdigest()[:16]

    def load(self) -> Calibration:
        return Calibration.from_images(calibration_images(self.spec, self.info, self.count), self.info, self.bases)


@dataclass
class Int8Report:
    """What a quantization measured (stored with the cached model); ``agreement`` is the lower of the two sets'."""

    agreement: float
    held_out: int  # frames checked: held-out calibration frames and generated scenes
    calibrated_on: int
    frames_agreement: float
    scenes_agreement: float
    scenes: int
    overflow_fix: str
    nncf: str
    openvino: str
    seconds: float
    floor: float = 0.0
    cached: bool = False

    @property
    def frames(self) -> int:
        """Held-out calibration frames checked (``held_out`` counts the scenes too)."""
        return self.held_out - self.scenes


class Int8Model:
    """The quantized graph for the model's own NMF step count: from the cache, or quantized and checked now."""

    def __init__(
        self, ir: IRCache, plan: CalibrationPlan | None, *, steps: int, floor: float, hint: str = "f32",
        directory: Path | None = None,
    ) -> None:  # fmt: skip
        """``steps``: the model's NMF step count; ``hint``: the precision the int8 model's float layers run in
        (the check runs it so); ``directory``: a model quantized ahead of time, else the cache."""
        try:
            import nncf
        except ImportError as exc:
            raise BackendUnavailableError(f'int8 needs NNCF ({exc}): pip install "streamseg[openvino]"') from exc
        self.ir, self.plan, self.steps, self.floor, self.hint = ir, plan, steps, floor, hint
        self.overflow_fix = "disable" if cpu_has_vnni() else "enable"
        key = f"{ir.key}|{plan.key if plan else directory}|{nncf.__version__}|{ir.ov_version}|{self.overflow_fix}|{_FORMAT}"
        self.directory = directory or ir.cache_dir / "int8" / hashlib.sha256(key.encode()).hexdigest()[:24]
        self.report: Int8Report | None = None
        self._model: Any = None

    def get(self, steps: int, channels: int, rank: int) -> Any:
        if steps != self.steps:
            raise ConfigError(f"int8 models run {self.steps} NMF steps, not {steps}: drop warm_steps")
        if self._model is None:
            self._model = self._load()
        if self._model is None:
            if self.plan is None:
                raise ConfigError(f"no int8 model in {self.directory}: quantize again (streamseg quantize --out)")
            self._model = self._quantize(steps, channels, rank)
        return self._model

    def _load(self) -> Any:
        meta = self.directory / "meta.json"
        if not meta.is_file():
            return None
        data = json.loads(meta.read_text())
        for old in ("frames_agreement", "scenes_agreement"):  # an older `quantize --out` folder measured both pooled
            data.setdefault(old, data["agreement"])
        data.setdefault("scenes", _PROBE_SCENES)
        report = Int8Report(**{**data, "cached": True, "floor": self.floor})
        self._guard(report)
        self.report = report
        log.info("openvino: int8 model from %s (agreement %.4f)", self.directory, report.agreement)
        return core().read_model(str(self.directory / "model.xml"))

    def _quantize(self, steps: int, channels: int, rank: int) -> Any:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

        t0 = time.perf_counter()
        float_model = self.ir.get(steps, channels, rank)
        assert self.plan is not None
        cal = self.plan.load()
        log.info("openvino: quantizing to int8 on %d frames (once: the result is cached)", len(cal.inputs))
        nncf_log = logging.getLogger("nncf")
        level = nncf_log.level
        nncf_log.setLevel(logging.WARNING)  # NNCF reports every ignored node at INFO
        try:
            with contextlib.redirect_stdout(sys.stderr):  # its progress bars: stdout stays the caller's
                quantized = nncf.quantize(
                    float_model,
                    nncf.Dataset(cal.inputs, lambda item: {0: item[0], 1: item[1]}),
                    subset_size=len(cal.inputs),
                    ignored_scope=nncf.IgnoredScope(patterns=[f"{NMF_PREFIX}.*"], validate=False),
                    advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(self.overflow_fix)),
                )
        finally:
            nncf_log.setLevel(level)
        frames, scenes = self._agreement(float_model, quantized, cal)
        report = Int8Report(
            agreement=min(frames, scenes),
            held_out=len(cal.held_out) + len(cal.scenes),
            calibrated_on=len(cal.inputs),
            frames_agreement=frames,
            scenes_agreement=scenes,
            scenes=len(cal.scenes),
            overflow_fix=self.overflow_fix,
            nncf=nncf.__version__,
            openvino=self.ir.ov_version,
            seconds=round(time.perf_counter() - t0, 1),
            floor=self.floor,
        )
        log.info("openvino: quantized to int8 in %.1f s, agreement %.4f", report.seconds, report.agreement)
        self._guard(report)
        self._save(quantized, report)
        self.report = report
        return core().read_model(str(self.directory / "model.xml"))

    def _agreement(self, float_model: Any, quantized: Any, cal: Calibration) -> tuple[float, float]:
        """Shares of output pixels where int8 (as it will run) and float32 give the same class: on the held-out
        frames, and on the scenes."""
        requests = [
            core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "SNIPPETS_MODE": "DISABLE"}).create_infer_request()
            for model, hint in ((float_model, "f32"), (quantized, self.hint))
        ]
        shares = []
        for items, (rows, cols) in ((cal.held_out, cal.valid), (cal.scenes, cal.scenes_valid)):
            same = total = 0
            for x, bases in items:
                a, b = (r.infer({0: x, 1: bases})[0][:, :, :rows, :cols].argmax(1) for r in requests)
                same += int((a == b).sum())
                total += a.size
            shares.append(round(same / max(total, 1), 5))
        return shares[0], shares[1]

    def _guard(self, report: Int8Report) -> None:
        if report.agreement < self.floor:
            raise QuantizationError(
                f"the int8 model agrees with the float model on {100 * report.agreement:.2f} % of the pixels "
                f"(held-out fifth of the calibration frames: {100 * report.frames_agreement:.2f} % of {report.frames}; "
                f"generated scenes never calibrated on: {100 * report.scenes_agreement:.2f} % of {report.scenes}), "
                f"below the floor of {100 * self.floor:.2f} %: "
                "calibrate on more frames, or on frames like the ones you segment (engine.calibration, "
                "engine.calibration_frames); lower engine.accuracy_floor to accept it; or run in float "
                "(engine.precision bf16 or fp32)"
            )

    def _save(self, model: Any, report: Int8Report) -> None:
        """Written to a private folder renamed into place: concurrent processes never see half an entry."""
        ov = import_openvino()
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.directory.parent))
        try:
            ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "meta.json").write_text(json.dumps({k: v for k, v in asdict(report).items() if k != "cached"}))
            if self.directory.exists():
                shutil.rmtree(self.directory, ignore_errors=True)
            os.rename(tmp, self.directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
