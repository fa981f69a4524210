"""Planning an archive run: globs, output templates, collisions, and outputs that appear only when complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.errors import ConfigError
from streamseg.pipeline import SinkConfig, SourceConfig
from streamseg.ray.jobs import discard, finish, plan_jobs


def _files(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (10 + i))


def test_globs_templates_and_longest_first(tmp_path: Path) -> None:
    _files(tmp_path, ["a/one.mp4", "a/two.mp4", "b/three.mp4", "b/notes.txt"])
    jobs = plan_jobs([SourceConfig(uri=f"{tmp_path}/**/*.mp4")],
                     [SinkConfig(spec=f"masks:{tmp_path}/out/{{parent}}-{{stem}}/"),
                      SinkConfig(spec=f"video:{tmp_path}/out/{{index}}_{{name}}")])  # fmt: skip
    assert [Path(j.path).name for j in jobs] == ["three.mp4", "two.mp4", "one.mp4"]  # by size, largest first
    by_name = {Path(j.path).name: j for j in jobs}
    masks, video = by_name["two.mp4"].outputs
    assert masks.final == f"{tmp_path}/out/a-two/" and video.final == f"{tmp_path}/out/1_two.mp4"
    assert Path(video.temporary("t0")).name == ".1_two.part-t0.mp4"  # hidden, same folder, same extension


@pytest.mark.parametrize(
    "sources, sinks, message",
    [
        (["{d}/*.mkv"], ["masks:{d}/o/{{stem}}/"], "no file matches"),
        (["{d}/*.mp4"], ["masks:{d}/o/"], "same output"),
        (["{d}/*.mp4"], ["video:{d}/o/{{parent}}.mp4"], "same output"),
        (["{d}/*.mp4"], ["display"], "writes files"),
        (["{d}/*.mp4"], [], "at least one file sink"),
        (["rtsp://127.0.0.1/cam"], ["masks:{d}/o/{{stem}}/"], "live source"),
        (["{d}"], ["masks:{d}/o/{{stem}}/"], "folder"),
    ],
)
def test_clear_errors(tmp_path: Path, sources: list[str], sinks: list[str], message: str) -> None:
    _files(tmp_path, ["one.mp4", "two.mp4"])
    with pytest.raises(ConfigError, match=message):
        plan_jobs([SourceConfig(uri=s.format(d=tmp_path)) for s in sources],
                  [SinkConfig(spec=s.format(d=tmp_path)) for s in sinks])  # fmt: skip


def test_outputs_appear_whole_by_rename_and_resume_sees_them(tmp_path: Path) -> None:
    _files(tmp_path, ["clip.mp4"])
    (job,) = plan_jobs([SourceConfig(uri=str(tmp_path / "clip.mp4"))],
                       [SinkConfig(spec=f"masks:{tmp_path}/out/{{stem}}/"), SinkConfig(spec=f"video:{tmp_path}/v/{{stem}}.mp4")])  # fmt: skip
    masks, video = job.outputs
    assert not job.complete()
    Path(masks.temporary("a")).mkdir(parents=True)
    (Path(masks.temporary("a")) / "000000.png").write_bytes(b"png")
    Path(video.temporary("a")).parent.mkdir(parents=True)
    Path(video.temporary("a")).write_bytes(b"mp4")
    finish(job, "a")
    assert job.complete() and (tmp_path / "out/clip/000000.png").exists() and (tmp_path / "v/clip.mp4").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip"]  # nothing temporary left
    Path(video.temporary("b")).write_bytes(b"half")  # a second attempt that is abandoned
    discard(job, "b")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["clip.mp4"]
