"""Per-source output names, decided once for the video, masks and RTSP sinks."""

from __future__ import annotations

from streamseg.sinks.routing import Routes, safe_source_id


def test_per_source_urls() -> None:
    assert Routes("rtsp://127.0.0.1:8554/live?x=1", "url").name_for("cam 1", per_source=True) == (
        "rtsp://127.0.0.1:8554/live/cam_1?x=1"
    )
    assert Routes("rtsp://h/{source}/s", "url").name_for("a", per_source=False) == "rtsp://h/a/s"


def test_files_and_folders_get_the_id_where_it_reads_naturally() -> None:
    assert Routes("out/clip.mp4", "file").name_for("cam/1", per_source=True) == "out/clip.cam_1.mp4"
    assert Routes("out/clip.mp4", "file").name_for("cam/1", per_source=False) == "out/clip.mp4"
    assert Routes("out/masks", "folder").name_for("../up", per_source=True) == "out/masks/up"
    assert Routes("out/{source}/m", "folder").name_for("a b", per_source=False) == "out/a_b/m"


def test_the_second_source_moves_the_first_aside_once() -> None:
    routes: Routes[str] = Routes("out.mp4", "file")
    name, move = routes.claim("a")
    assert (name, move) == ("out.mp4", None)
    routes.add("a", "output-a")
    name, move = routes.claim("b")
    assert name == "out.b.mp4" and move == ("a", "output-a", "out.a.mp4")
    routes.add("b", "output-b")
    assert routes.claim("c") == ("out.c.mp4", None)


def test_a_template_never_moves_anything() -> None:
    routes: Routes[str] = Routes("out-{source}.mp4", "file")
    routes.add("a", "x")
    assert routes.claim("b") == ("out-b.mp4", None)
    assert routes.root == "out-"


def test_ids_become_one_safe_path_component() -> None:
    assert safe_source_id("rtsp://h/x y") == "rtsp_h_x_y"
    assert safe_source_id("...") == "source"
