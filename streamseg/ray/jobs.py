"""An archive run as jobs: which files, where each one's outputs go, and how they appear only when complete.

Pure bookkeeping, no Ray: the driver (:mod:`.archive`) plans jobs here, workers write each output
under a temporary name beside the final one and :func:`finish` renames it when the file is done, so
a crash or a retry never leaves half an output, and ``resume`` only has to ask whether the outputs exist.
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamseg.errors import ConfigError

__all__ = ["Job", "Output", "plan_jobs", "finish", "discard", "is_live", "FILE_SINKS", "PLACEHOLDERS"]

#: What a worker may write: files on storage every node reaches.
FILE_SINKS = ("video", "masks")
PLACEHOLDERS = ("{stem}", "{name}", "{parent}", "{index}")


@dataclass(frozen=True)
class Output:
    """One sink's output for one file: the sink kind, its final path, and its options."""

    kind: str
    final: str
    options: dict[str, Any] = field(default_factory=dict)

    def temporary(self, token: str) -> str:
        """A hidden name beside the final one, keeping the extension (the video sink picks its format by it)."""
        path = Path(self.final.rstrip("/"))
        return str(path.with_name(f".{path.stem}.part-{token}{path.suffix}"))


@dataclass(frozen=True)
class Job:
    """One file, segmented whole by one worker."""

    index: int
    path: str
    size: int  # bytes: the longest files go first
    outputs: tuple[Output, ...]
    source_options: dict[str, Any] = field(default_factory=dict)

    def complete(self) -> bool:
        """Every output is in place (they only appear, by rename, once the file is done)."""
        return all(os.path.exists(o.final.rstrip("/")) for o in self.outputs)


def is_live(uri: str) -> bool:
    """A camera or a network stream (what a long-lived worker serves), not a file."""
    return "://" in uri or uri.isdigit() or uri.startswith("/dev/video")


def _expand(uri: str) -> list[str]:
    if any(ch in uri for ch in "*?["):
        return sorted(p for p in glob.glob(uri, recursive=True) if os.path.isfile(p))
    if os.path.isdir(uri):
        raise ConfigError(f"{uri} is a folder: under --ray give its videos as a glob, e.g. '{uri.rstrip('/')}/**/*.mp4'")
    return [uri]


def _fill(template: str, path: str, index: int) -> str:
    p = Path(path)
    return (template.replace("{stem}", p.stem).replace("{name}", p.name)
            .replace("{parent}", p.parent.name).replace("{index}", str(index)))  # fmt: skip


def plan_jobs(sources: list[Any], sinks: list[Any]) -> list[Job]:
    """Jobs for every file the sources name (globs expanded), longest first, outputs from the sink templates.

    ``sources``/``sinks`` are the pipeline config's records. Refused: a glob that matches nothing, a
    sink that does not write files, and a template that gives two files the same output.
    """
    files: list[tuple[str, dict[str, Any]]] = []
    for sc in sources:
        if is_live(sc.uri):
            raise ConfigError(f"{sc.uri!r} is a live source: give files and live streams to separate runs")
        found = _expand(sc.uri)
        if not found:
            raise ConfigError(f"no file matches {sc.uri!r}: check the pattern (quote it so the shell leaves ** alone)")
        files += [(f, dict(sc.options)) for f in found]
    if not sinks:
        raise ConfigError("--ray needs at least one file sink: --sink 'masks:out/{stem}/' or --sink 'video:out/{stem}.mp4'")
    jobs, owner = [], {}
    for index, (path, options) in enumerate(files):
        outputs = []
        for sk in sinks:
            kind, _, target = sk.spec.partition(":")
            if kind not in FILE_SINKS or not target:
                raise ConfigError(f"sink {sk.spec!r}: under --ray each worker writes files; use video:PATH or masks:DIR")
            final = _fill(target, path, index)
            key = os.path.abspath(final.rstrip("/"))
            if key in owner:
                raise ConfigError(
                    f"sink {sk.spec!r} gives {owner[key]} and {path} the same output {final}: "
                    f"put {' or '.join(PLACEHOLDERS)} in it, e.g. {kind}:out/{{stem}}{Path(target).suffix or '/'}"
                )
            owner[key] = path
            outputs.append(Output(kind, final, dict(sk.options)))
        size = os.path.getsize(path) if os.path.exists(path) else 0
        jobs.append(Job(index, path, size, tuple(outputs), options))
    return sorted(jobs, key=lambda j: (-j.size, j.index))


def new_token() -> str:
    return uuid.uuid4().hex[:8]


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def finish(job: Job, token: str) -> None:
    """Put each temporary output in its final place (replacing an older one)."""
    for out in job.outputs:
        final = out.final.rstrip("/")
        os.makedirs(os.path.dirname(os.path.abspath(final)), exist_ok=True)
        _remove(final)
        os.replace(out.temporary(token), final)


def discard(job: Job, token: str) -> None:
    """Remove what an attempt left under its temporary names."""
    for out in job.outputs:
        _remove(out.temporary(token))
