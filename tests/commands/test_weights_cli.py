"""``streamseg weights list|show|download`` through the real entry point, downloads from a local server."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from streamseg.cli import main
from streamseg.weights import WeightsSpec, list_weights, register_weights, unregister_weights

pytestmark = pytest.mark.timeout(60)

PAYLOAD = b"checkpoint bytes " * 2000


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def served_spec(http_folder):
    """A spec registered for this test whose file is served by a real HTTP server on 127.0.0.1."""
    (http_folder.root / "cli_model.pth").write_bytes(PAYLOAD)
    spec = register_weights(
        WeightsSpec(
            name="tmp_cli_model",
            variant="segnext_t",
            num_classes=2,
            classes=("background", "thing"),
            palette=((0, 0, 0), (255, 0, 0)),
            url=http_folder.url("cli_model.pth"),
            sha256=hashlib.sha256(PAYLOAD).hexdigest()[:8],
            dataset="test",
        )
    )
    yield spec
    unregister_weights(spec.name)


def _rows(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "VARIANT", "CLASSES", "DATASET", "CACHED"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_list_shows_every_registered_name(cache: Path, capsys) -> None:
    assert main(["weights", "list"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert sorted(rows) == list_weights()
    assert rows["segnext_t_ade20k"][1:] == ["segnext_t", "150", "ADE20K", "no"]
    assert rows["mscan_l_in1k"][2] == "backbone"


def test_list_by_variant(cache: Path, capsys) -> None:
    assert main(["weights", "list", "--variant", "segnext_s"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == set(list_weights("segnext_s")) and "segnext_s_cityscapes" in rows
    assert all(row[1] == "segnext_s" for row in rows.values())


def test_unknown_variant_is_a_usage_error(capsys) -> None:
    assert main(["weights", "list", "--variant", "tiny"]) == 2
    assert "unknown variant 'tiny'" in capsys.readouterr().err


def test_show(cache: Path, capsys) -> None:
    assert main(["weights", "show", "segnext_b_cityscapes"]) == 0
    out = capsys.readouterr().out
    assert "https://cloud.tsinghua.edu.cn/f/adb49029f66f426bb046/?dl=1" in out
    assert str(cache / "weights" / "segnext_b_cityscapes.pth") in out
    assert "nmf_rank:" in out and "64" in out
    assert " 18  bicycle " in out


def test_show_json(cache: Path, capsys) -> None:
    assert main(["weights", "show", "segnext_t_ade20k", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "segnext_t_ade20k" and info["sha256"] == "05bd8466"
    assert len(info["classes"]) == 150 and info["cached"] is False
    assert info["path"].startswith(str(cache))


def test_unknown_name_exits_2_with_a_suggestion(capsys) -> None:
    assert main(["weights", "show", "segnext_t_ade"]) == 2  # a usage error, like a bad config value
    err = capsys.readouterr().err
    assert "no weights named 'segnext_t_ade'" in err and "did you mean 'segnext_t_ade20k'" in err
    assert main(["weights", "download", "segnext_t_ade"]) == 2
    assert "neither an existing file" in capsys.readouterr().err


def test_download_prints_the_path_and_list_marks_it_cached(cache: Path, served_spec: WeightsSpec, capsys) -> None:
    assert main(["weights", "download", "-q", served_spec.name]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == cache / "weights" / "cli_model.pth"
    assert path.read_bytes() == PAYLOAD
    assert main(["weights", "list", "--variant", "segnext_t"]) == 0
    assert _rows(capsys.readouterr().out)[served_spec.name][-1] == "yes"


def test_download_url(cache: Path, served_spec: WeightsSpec, capsys) -> None:
    assert main(["weights", "download", "-q", str(served_spec.url)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.parent == cache / "weights" and path.read_bytes() == PAYLOAD


def test_download_offline_exits_1_and_says_where_to_put_the_file(cache: Path, served_spec: WeightsSpec, capsys) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused, like an offline machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unregister_weights(served_spec.name)
    dead = WeightsSpec(**{**served_spec.__dict__, "url": f"http://127.0.0.1:{port}/cli_model.pth"})
    register_weights(dead)  # same name: the fixture unregisters it at the end
    assert main(["weights", "download", "-q", dead.name]) == 1
    err = capsys.readouterr().err
    assert f"could not download http://127.0.0.1:{port}/cli_model.pth" in err
    assert str(cache / "weights" / "cli_model.pth") in err
