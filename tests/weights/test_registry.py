"""The weights registry: built-in specs, lookups, cache location and resolve_weights over a real local server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest

import streamseg.weights.registry as registry
from streamseg.errors import ConfigError, WeightsNotFoundError
from streamseg.weights import (
    VARIANTS,
    WeightsSpec,
    cache_dir,
    get_weights,
    is_cached,
    list_weights,
    register_weights,
    resolve_weights,
    unregister_weights,
    weights_path,
)
from streamseg.weights.datasets import ADE20K_CLASSES, ADE20K_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

pytestmark = pytest.mark.timeout(60)

BUILTIN = [f"segnext_{v}_{d}" for v in "tsbl" for d in ("ade20k", "cityscapes")] + [f"mscan_{v}_in1k" for v in "tsbl"]
PAYLOAD = b"not really a checkpoint, but real bytes " * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def http_dir(http_folder):
    """A real HTTP server on 127.0.0.1 serving model.pth."""
    (http_folder.root / "model.pth").write_bytes(PAYLOAD)
    return http_folder.base, http_folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def temp_spec():
    """Registers specs for one test and removes them afterwards."""
    names: list[str] = []

    def add(**kwargs: object) -> WeightsSpec:
        fields: dict[str, object] = dict(variant="segnext_t", num_classes=2, classes=("a", "b"), palette=((0, 0, 0), (1, 2, 3)))
        fields.update(kwargs)
        spec = register_weights(WeightsSpec(**fields))  # type: ignore[arg-type]
        names.append(spec.name)
        return spec

    yield add
    for name in names:
        unregister_weights(name)


# --- built-in specs -------------------------------------------------------------------------


def test_builtins_are_registered() -> None:
    assert set(BUILTIN) <= set(list_weights())
    assert list_weights() == sorted(list_weights())
    assert set(list_weights("segnext_b")) >= {"segnext_b_ade20k", "segnext_b_cityscapes", "mscan_b_in1k"}
    assert all(get_weights(n).variant == "segnext_b" for n in list_weights("segnext_b"))


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_spec_is_consistent(name: str) -> None:
    spec = get_weights(name)
    assert spec.name == name
    assert spec.variant in VARIANTS and name.split("_")[1] == spec.variant[-1]
    assert len(spec.classes) == len(spec.palette) == spec.num_classes
    assert spec.backbone_only == (spec.num_classes == 0) == name.startswith("mscan_")
    assert all(len(c) == 3 and all(0 <= x <= 255 for x in c) for c in spec.palette)
    assert spec.url is not None and spec.url.startswith("https://") and spec.bundled is None
    assert spec.license == "Apache-2.0" and spec.dataset
    assert spec.cache_name.endswith(".pth") and "/" not in spec.cache_name
    if "cityscapes" in name:
        assert spec.sha256 is None and spec.url.endswith("/?dl=1")
        assert spec.cache_name == f"{name}.pth"
        assert spec.test_scale == (2048, 1024) and spec.slide == (1024, 768)
        assert spec.nmf_rank == (16 if spec.variant in ("segnext_t", "segnext_s") else 64)
        assert (spec.classes, spec.palette) == (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)
    else:
        file_name = PurePosixPath(urlsplit(spec.url).path).name
        assert spec.cache_name == file_name
        assert spec.sha256 == file_name.removesuffix(".pth").rsplit("-", 1)[1]
        assert len(spec.sha256) == 8
        assert spec.slide is None and spec.nmf_rank == 16
    if "ade20k" in name:
        assert spec.test_scale == (2048, 512)
        assert (spec.classes, spec.palette) == (ADE20K_CLASSES, ADE20K_PALETTE)
        assert f"mscan-{spec.variant[-1]}_" in spec.url


def test_builtin_cache_names_are_unique() -> None:
    names = [get_weights(n).cache_name for n in BUILTIN]
    assert len(set(names)) == len(names)


def test_dataset_tables() -> None:
    assert len(ADE20K_CLASSES) == len(ADE20K_PALETTE) == 150
    assert len(set(ADE20K_CLASSES)) == 150
    assert ADE20K_CLASSES[:5] == ("wall", "building", "sky", "floor", "tree")
    assert ADE20K_CLASSES[-1] == "flag" and ADE20K_CLASSES[12] == "person"
    # The upstream palette reuses one grey for road (6) and skyscraper (48), and only that one.
    dupes = {c for c in ADE20K_PALETTE if ADE20K_PALETTE.count(c) > 1}
    assert dupes == {(140, 140, 140)}
    assert ADE20K_PALETTE.index((140, 140, 140)) == ADE20K_CLASSES.index("road")
    assert len(CITYSCAPES_CLASSES) == len(CITYSCAPES_PALETTE) == 19
    assert len(set(CITYSCAPES_CLASSES)) == 19 and len(set(CITYSCAPES_PALETTE)) == 19
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_PALETTE[0] == (128, 64, 128)
    assert CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_PALETTE[13] == (0, 0, 142)


# --- lookups --------------------------------------------------------------------------------


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(WeightsNotFoundError, match="did you mean 'segnext_t_ade20k'") as info:
        get_weights("segnext_t_ade2k")
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_variant_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="segnext_t"):
        list_weights("segnext-t")


def test_register_and_unregister(temp_spec) -> None:
    spec = temp_spec(name="tmp_registered", url="https://example.invalid/x.pth")
    assert get_weights("tmp_registered") is spec
    assert "tmp_registered" in list_weights("segnext_t")
    with pytest.raises(ValueError, match="already registered"):
        register_weights(replace(spec))
    with pytest.raises(ValueError, match="already registered"):
        register_weights(replace(get_weights("segnext_t_ade20k")))


def test_unregister_unknown_name_raises() -> None:
    with pytest.raises(WeightsNotFoundError):
        unregister_weights("never_registered_x")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(url="https://h/x.pth", num_classes=3), "one name and one colour"),
        (dict(url="https://h/x.pth", bundled="x.safetensors"), "exactly one of"),
        (dict(), "exactly one of"),
        (dict(url="ftp://h/x.pth"), "http"),
        (dict(url="https://h/x.pth", sha256="xyz"), "hex"),
        (dict(url="https://h/f/abc/?dl=1"), "file_name"),
        (dict(url="https://h/x.pth", file_name="../x.pth"), "plain file name"),
        (dict(url="https://h/x.pth", backbone_only=True), "backbone-only"),
        (dict(name="a/b", url="https://h/x.pth"), "names are"),
    ],
)
def test_invalid_specs_are_rejected(fields: dict, message: str) -> None:
    base: dict[str, object] = dict(name="bad", variant="segnext_t", num_classes=2, classes=("a", "b"), palette=((0, 0, 0),) * 2)
    base.update(fields)
    with pytest.raises(ConfigError, match=message):
        WeightsSpec(**base)  # type: ignore[arg-type]


# --- cache location -------------------------------------------------------------------------


def test_cache_dir_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("STREAMSEG_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "streamseg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "streamseg"


def test_weights_path_follows_the_cache(cache: Path) -> None:
    spec = get_weights("segnext_l_cityscapes")
    assert weights_path(spec) == cache / "weights" / "segnext_l_cityscapes.pth"
    assert not is_cached(spec)
    weights_path(spec).parent.mkdir(parents=True)
    weights_path(spec).write_bytes(b"x")
    assert is_cached(spec)


# --- resolve_weights ------------------------------------------------------------------------


def test_resolve_local_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.pth"
    path.write_bytes(b"x")
    assert resolve_weights(path) == (path, None)
    assert resolve_weights(str(path)) == (path, None)


def test_resolve_directory_and_nonsense(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="directory"):
        resolve_weights(tmp_path)
    with pytest.raises(WeightsNotFoundError, match="neither an existing file, an http\\(s\\) URL nor a registered") as info:
        resolve_weights(str(tmp_path / "segnext_s_ade20"))
    with pytest.raises(WeightsNotFoundError, match="did you mean 'segnext_s_ade20k'"):
        resolve_weights("segnext_s_ade20")
    assert str(tmp_path) in str(info.value)


def test_resolve_registered_name_downloads_then_reuses(http_dir, cache: Path, temp_spec) -> None:
    base, httpd = http_dir
    spec = temp_spec(name="tmp_remote", url=f"{base}/model.pth", sha256=SHA[:8], file_name="tmp_remote.pth")
    path, got = resolve_weights("tmp_remote", progress=False)
    assert got is spec
    assert path == cache / "weights" / "tmp_remote.pth" == weights_path(spec)
    assert path.read_bytes() == PAYLOAD and is_cached(spec)
    httpd.stop()  # offline from here on: the cached copy must do
    assert resolve_weights("tmp_remote", progress=False) == (path, spec)


def test_resolve_url_downloads_into_the_cache(http_dir, cache: Path) -> None:
    base, _ = http_dir
    path, spec = resolve_weights(f"{base}/model.pth", progress=False)
    assert spec is None
    assert path == cache / "weights" / "model.pth"
    assert path.read_bytes() == PAYLOAD


def test_resolve_offline_registered_name_says_where_to_put_the_file(cache: Path, temp_spec) -> None:
    import socket

    from streamseg.errors import DownloadError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp_spec(name="tmp_offline", url=f"http://127.0.0.1:{port}/tmp_offline.pth", sha256=SHA)
    with pytest.raises(DownloadError) as info:
        resolve_weights("tmp_offline", progress=False)
    assert str(cache / "weights" / "tmp_offline.pth") in str(info.value)


def test_bundled_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temp_spec) -> None:
    monkeypatch.setattr(registry, "_data_dir", lambda: tmp_path)
    spec = temp_spec(name="tmp_bundled", bundled="tmp_bundled.safetensors")
    assert not is_cached(spec)
    with pytest.raises(WeightsNotFoundError, match="missing from this install"):
        resolve_weights("tmp_bundled")
    (tmp_path / "tmp_bundled.safetensors").write_bytes(b"x")
    assert resolve_weights("tmp_bundled") == (tmp_path / "tmp_bundled.safetensors", spec)


def test_default_data_dir_is_package_data() -> None:
    import streamseg.weights

    assert registry._data_dir() == Path(streamseg.weights.__file__).resolve().parent / "data"


def test_import_is_cheap() -> None:
    """Importing the weights package registers nothing and loads no network stack."""
    code = (
        "import sys, streamseg.weights, streamseg.weights.registry as r; "
        "assert not r._REGISTRY and not r._loaded; "
        "assert 'urllib.request' not in sys.modules and 'tqdm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
