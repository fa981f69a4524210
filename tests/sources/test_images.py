"""ImageFolderSource against real image files written with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import decode_index, index_frame
from streamseg.errors import SourceError
from streamseg.sources import ImageFolderSource, Source
from streamseg.datasets import natural_key
from streamseg.types import Frame


def read_all(source: ImageFolderSource) -> list[Frame]:
    source.open()
    try:
        frames = []
        while (frame := source.read(0.1)) is not None:
            frames.append(frame)
        return frames
    finally:
        source.close()


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_folder_natural_order_every_file_once(tmp_path: Path) -> None:
    for i in [0, 1, 2, 10, 11, 3, 20]:  # unpadded numbers: plain sorting would put 10 before 2
        write_rgb(tmp_path / f"frame{i}.png", index_frame(i, 64, 48))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    write_rgb(tmp_path / "sub" / "frame99.png", index_frame(99, 64, 48))  # not recursive
    source = ImageFolderSource(tmp_path, source_id="dir")
    assert isinstance(source, Source) and source.live is False
    frames = read_all(source)
    assert [decode_index(f.image) for f in frames] == [0, 1, 2, 3, 10, 11, 20]
    assert [f.index for f in frames] == list(range(7))
    assert all(f.pts is None and f.time_base is None and f.source_id == "dir" for f in frames)
    assert frames[0].image.dtype == np.uint8 and frames[0].image.flags.c_contiguous
    assert np.array_equal(frames[0].image, index_frame(0, 64, 48))  # PNG is lossless, RGB order kept
    assert source.frame_count == 7 and source.stats.frames == 7


def test_natural_key() -> None:
    names = ["b10.png", "a2.png", "B1.png", "a10.png", "a1.png", "img_0002.jpg", "img_1.jpg"]
    assert sorted(names, key=natural_key) == [
        "a1.png",
        "a2.png",
        "a10.png",
        "B1.png",
        "b10.png",
        "img_1.jpg",
        "img_0002.jpg",
    ]


def test_glob_pattern_and_recursive_glob(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_rgb(tmp_path / "a" / "1.png", index_frame(1, 32, 32))
    write_rgb(tmp_path / "a" / "2.jpg", index_frame(2, 32, 32))
    write_rgb(tmp_path / "3.png", index_frame(3, 32, 32))
    assert [decode_index(f.image) for f in read_all(ImageFolderSource(str(tmp_path / "a" / "*.png")))] == [1]
    frames = read_all(ImageFolderSource(str(tmp_path / "**" / "*.png")))
    assert sorted(decode_index(f.image) for f in frames) == [1, 3]


def test_single_image_file(tmp_path: Path) -> None:
    frames = read_all(ImageFolderSource(write_rgb(tmp_path / "one.png", index_frame(5, 40, 30))))
    assert len(frames) == 1 and frames[0].image.shape == (30, 40, 3)


def test_gray_rgba_16bit_conversions(tmp_path: Path) -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    cv2.imwrite(str(tmp_path / "1_gray.png"), gray)
    rgba_bgra = np.zeros((48, 64, 4), np.uint8)
    rgba_bgra[..., 0], rgba_bgra[..., 1], rgba_bgra[..., 2], rgba_bgra[..., 3] = 10, 20, 200, 0  # B, G, R, alpha 0
    cv2.imwrite(str(tmp_path / "2_rgba.png"), rgba_bgra)
    deep = np.full((48, 64, 3), 0, np.uint16)
    deep[..., 2] = 0xABCD  # red channel (OpenCV stores BGR)
    deep[..., 0] = 0x0100
    cv2.imwrite(str(tmp_path / "3_deep.png"), deep)
    gray16 = np.full((48, 64), 0x8000, np.uint16)
    cv2.imwrite(str(tmp_path / "4_gray16.png"), gray16)
    frames = read_all(ImageFolderSource(tmp_path))
    assert len(frames) == 4
    for f in frames:
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
    assert np.array_equal(frames[0].image, np.repeat(gray[..., None], 3, axis=2))
    assert tuple(frames[1].image[0, 0]) == (200, 20, 10)  # alpha dropped, not blended
    assert tuple(frames[2].image[0, 0]) == (0xAB, 0, 0x01)  # >> 8, RGB order
    assert tuple(frames[3].image[0, 0]) == (0x80, 0x80, 0x80)


def test_images_may_differ_in_size(tmp_path: Path) -> None:
    write_rgb(tmp_path / "1.png", index_frame(1, 64, 48))
    write_rgb(tmp_path / "2.png", index_frame(2, 33, 17))
    assert [f.image.shape for f in read_all(ImageFolderSource(tmp_path))] == [(48, 64, 3), (17, 33, 3)]


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    write_rgb(tmp_path / "1.png", index_frame(1, 64, 48))
    (tmp_path / "2.png").write_bytes(b"\x89PNG but then garbage")
    source = ImageFolderSource(tmp_path)
    source.open()
    assert source.read(0.1) is not None
    with pytest.raises(SourceError, match=r"cannot decode image .*2\.png.*replace"):
        source.read(0.1)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(SourceError, match=r"no images in folder .*glob"):
        ImageFolderSource(tmp_path).open()


def test_glob_without_matches(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no images match .*\*\.png"):
        ImageFolderSource(str(tmp_path / "*.png")).open()


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"not found: .*nope"):
        ImageFolderSource(tmp_path / "nope").open()
