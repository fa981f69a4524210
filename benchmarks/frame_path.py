"""Which streamseg modules one frame passes through, and whether any call goes back to a caller's module.

    python benchmarks/frame_path.py [--sink video] [--sink masks] [--backend torch] [--json]

Runs ``streamseg run``'s pipeline on a short generated clip (``file -> engine -> sinks``) with a
profiler in every pipeline thread, switched on only while frames flow (after the third frame
reached the sinks, until the eighth did): set-up (opening, loading, the first batch) is not
counted. Prints the modules called per frame (the model's own files, ``streamseg/model/``, listed
apart) and every call that re-enters a module already on the call stack below its caller (a
"double back", e.g. a base class in one file calling a hook in another that calls the first file
again). ``docs/architecture.md`` describes the path this prints.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import streamseg

PACKAGE = Path(streamseg.__file__).resolve().parent
INSTRUMENT = "sinks/callback"  # the callback sink that switches the tracer on and off is not counted


def module_of(filename: str) -> str | None:
    """``streamseg/sinks/video.py`` -> ``sinks/video``; None outside the package."""
    try:
        rel = Path(filename).resolve().relative_to(PACKAGE)
    except ValueError:
        return None
    return str(rel.with_suffix(""))


class PathTracer:
    """A profile hook recording, per thread, the stack of streamseg modules and each call between them."""

    def __init__(self) -> None:
        self.active = False
        self.modules: collections.Counter[str] = collections.Counter()
        self.edges: collections.Counter[tuple[str, str]] = collections.Counter()
        self.doubled: collections.Counter[str] = collections.Counter()
        self._cache: dict[str, str | None] = {}

    def _module(self, code: Any) -> str | None:
        name = code.co_filename
        if name not in self._cache:
            self._cache[name] = module_of(name)
        return self._cache[name]

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call" or not self.active:
            return
        callee = self._module(frame.f_code)
        if callee is None or callee == INSTRUMENT:
            return
        stack: list[str] = []  # streamseg modules below this call, nearest first, runs collapsed
        f = frame.f_back
        while f is not None:
            mod = self._module(f.f_code)
            if mod is not None and (not stack or stack[-1] != mod):
                stack.append(mod)
            f = f.f_back
        self.modules[callee] += 1
        if stack and stack[0] != callee:
            self.edges[(stack[0], callee)] += 1
            if callee in stack[1:]:
                self.doubled[f"{' -> '.join(reversed(stack[: stack.index(callee, 1) + 1]))} -> {callee}"] += 1


def trace(sinks: list[str], backend: str, frames: int = 12) -> dict[str, Any]:
    from streamseg.engine import EngineConfig
    from streamseg.pipeline import Pipeline, PipelineConfig, SinkConfig, SourceConfig
    from streamseg.sinks.callback import CallbackSink
    from streamseg.synth import write_clip

    tracer = PathTracer()
    seen = [0]

    def count(_pred: Any) -> None:  # switches the tracer on after frame 3 and off after frame 8
        seen[0] += 1
        tracer.active = 3 <= seen[0] < 8

    with tempfile.TemporaryDirectory() as tmp:
        write_clip(Path(tmp) / "clip", frames=frames, seed=3, size=(160, 96), fps=10)
        specs = [f"video:{tmp}/out.mp4" if s == "video" else f"masks:{tmp}/masks" for s in sinks]
        cfg = PipelineConfig(
            sources=[SourceConfig(uri=f"{tmp}/clip/video.mp4")],
            sinks=[SinkConfig(spec=s, policy="block") for s in specs],
            engine=EngineConfig(backend=backend, test_scale=(160, 96)),
            batch_size=1,
            progress=False,
        )
        pipe = Pipeline(cfg, sinks=[CallbackSink(count, name="count")])
        threading.setprofile(tracer.hook)
        try:
            pipe.run()
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
    own = sorted(m for m in tracer.modules if not m.startswith("model/"))
    return {
        "sinks": sinks,
        "backend": backend,
        "modules": own,
        "model_modules": sorted(m for m in tracer.modules if m.startswith("model/")),
        "calls": {f"{a} -> {b}": n for (a, b), n in sorted(tracer.edges.items())},
        "double_backs": dict(tracer.doubled),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sink", action="append", choices=("video", "masks"), help="default: video")
    parser.add_argument("--backend", default="torch", help="torch or openvino")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = trace(args.sink or ["video"], args.backend)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"modules per frame ({len(result['modules'])}, model files apart): {', '.join(result['modules'])}")
    print(f"model files: {', '.join(result['model_modules'])}")
    for edge, n in result["calls"].items():
        print(f"  {edge}  x{n}")
    print(f"double backs: {len(result['double_backs'])}")
    for path, n in result["double_backs"].items():
        print(f"  {path}  x{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
