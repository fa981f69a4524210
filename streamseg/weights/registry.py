"""Named pretrained weights: what they are, where they come from, where they are cached.

``resolve_weights`` turns whatever a user typed (a file, a URL or a registered
name) into a local file, so every command accepts all three. The built-in specs
are registered on first use, not at import.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import logging
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from streamseg.datasets import MEAN, STD
from streamseg.errors import ConfigError, WeightsNotFoundError
from streamseg.weights.download import download

__all__ = [
    "VARIANTS",
    "WeightsSpec",
    "cache_dir",
    "get_weights",
    "is_cached",
    "list_weights",
    "register_weights",
    "resolve_weights",
    "unregister_weights",
    "weights_path",
]

log = logging.getLogger(__name__)

VARIANTS: tuple[str, ...] = ("segnext_t", "segnext_s", "segnext_b", "segnext_l")
"""Model sizes the registered weights are for (SegNeXt-T/S/B/L and their MSCAN backbones)."""

# Modules imported on first registry use so that they can call register_weights()
# (the bundled synthetic-scene model). A module that fails to import is logged and skipped.
_REGISTRANT_MODULES: tuple[str, ...] = ("streamseg.weights.bundled",)

_REGISTRY: dict[str, WeightsSpec] = {}
_LOCK = threading.RLock()
_loaded = False


@dataclass(frozen=True)
class WeightsSpec:
    """One set of pretrained weights and everything needed to run them as they were evaluated."""

    name: str
    variant: str
    num_classes: int
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    url: str | None = None
    sha256: str | None = None
    bundled: str | None = None
    file_name: str | None = None
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    test_scale: tuple[int, int] = (2048, 512)
    slide: tuple[int, int] | None = None
    nmf_rank: int = 16
    backbone_only: bool = False
    license: str = ""
    dataset: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        where = f"weights spec {self.name!r}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ConfigError(f"{where}: names are letters, digits, '_', '.', '-' (so they never look like a path)")
        if (self.url is None) == (self.bundled is None):
            raise ConfigError(f"{where}: give exactly one of url= (downloaded) or bundled= (shipped in the package)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must start with http:// or https://, got {self.url!r}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{1,64}", self.sha256):
            raise ConfigError(f"{where}: sha256 must be a hex digest or hex prefix, got {self.sha256!r}")
        if self.backbone_only != (self.num_classes == 0):
            raise ConfigError(f"{where}: backbone-only weights have num_classes=0, and only they do")
        if not (len(self.classes) == len(self.palette) == self.num_classes):
            raise ConfigError(
                f"{where}: num_classes={self.num_classes} but {len(self.classes)} class names and "
                f"{len(self.palette)} palette colours; give one name and one colour per class"
            )
        for name in (self.file_name, self.bundled):
            if name is not None and (PurePosixPath(name).name != name or name in ("", ".", "..") or "\\" in name):
                raise ConfigError(f"{where}: {name!r} must be a plain file name, without directories")
        _ = self.cache_name  # fails early for URLs without a usable file name

    @property
    def cache_name(self) -> str:
        """The file name under the weights cache (or in the package data for bundled weights)."""
        if self.bundled is not None:
            return self.bundled
        if self.file_name is not None:
            return self.file_name
        name = _url_file_name(self.url or "")
        if name is None:
            raise ConfigError(f"weights spec {self.name!r}: its URL has no file name; give file_name=")
        return name


def _url_file_name(url: str) -> str | None:
    """The last path component of ``url``, if it is a safe file name."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = "" if path.endswith("/") else PurePosixPath(path).name
    if not name or name in (".", "..") or "\\" in name or "/" in name:
        return None
    return name


def cache_dir() -> Path:
    """Root of streamseg's cache: ``$STREAMSEG_CACHE``, else ``$XDG_CACHE_HOME/streamseg``, else ``~/.cache/streamseg``."""
    if value := os.environ.get("STREAMSEG_CACHE"):
        return Path(value).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "streamseg"
    return Path.home() / ".cache" / "streamseg"


def _weights_dir() -> Path:
    return cache_dir() / "weights"


def _data_dir() -> Path:
    """Where bundled weights are installed (package data next to this module)."""
    return Path(__file__).resolve().parent / "data"


def weights_path(spec: WeightsSpec) -> Path:
    """Where the file of ``spec`` lives, or will live once downloaded."""
    if spec.bundled is not None:
        return _data_dir() / spec.bundled
    return _weights_dir() / spec.cache_name


def is_cached(spec: WeightsSpec) -> bool:
    """Whether the file of ``spec`` is on disk already (bundled, or downloaded before); no network, no hashing."""
    return weights_path(spec).is_file()


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    with _LOCK:
        if _loaded:
            return
        _loaded = True  # set first: registrant modules call register_weights(), which calls us
        for spec in _builtin_specs():
            _REGISTRY.setdefault(spec.name, spec)
        for module in _REGISTRANT_MODULES:
            try:
                importlib.import_module(module)
            except Exception:  # a broken extra must not take the built-in weights down with it
                log.warning("could not load the weights registered by %s", module, exc_info=True)


def register_weights(spec: WeightsSpec) -> WeightsSpec:
    """Add ``spec`` to the registry; a name registered twice is a ValueError."""
    _ensure_loaded()
    with _LOCK:
        if spec.name in _REGISTRY:
            raise ConfigError(f"weights {spec.name!r} are already registered; pick another name")
        _REGISTRY[spec.name] = spec
    return spec


def unregister_weights(name: str) -> WeightsSpec:
    """Remove and return a registered spec (for tests and plugins that replace one)."""
    _ensure_loaded()
    with _LOCK:
        if name not in _REGISTRY:
            raise _not_found(name, f"no weights named {name!r} are registered")
        return _REGISTRY.pop(name)


def list_weights(variant: str | None = None) -> list[str]:
    """Registered names, sorted; only those for ``variant`` when given."""
    _ensure_loaded()
    with _LOCK:
        specs = list(_REGISTRY.values())
    if variant is not None:
        known = set(VARIANTS) | {spec.variant for spec in specs}
        if variant not in known:
            raise ConfigError(f"unknown variant {variant!r}; use one of {', '.join(sorted(known))}")
        specs = [spec for spec in specs if spec.variant == variant]
    return sorted(spec.name for spec in specs)


def get_weights(name: str) -> WeightsSpec:
    """The spec registered as ``name``; unknown names raise WeightsNotFoundError with suggestions."""
    _ensure_loaded()
    with _LOCK:
        spec = _REGISTRY.get(name)
    if spec is None:
        raise _not_found(name, f"no weights named {name!r}")
    return spec


def _not_found(ref: str, what: str) -> WeightsNotFoundError:
    names = list_weights()
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return WeightsNotFoundError(f"{what}{hint} (`streamseg weights list` shows all {len(names)} registered names)")


def resolve_weights(ref: str | os.PathLike[str], *, progress: bool = True) -> tuple[Path, WeightsSpec | None]:
    """A local file for ``ref`` (a path, an http(s) URL or a registered name), downloading it if needed.

    The spec comes back only for registered names; for paths and URLs the
    caller has to read what the checkpoint is from the file itself.
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if path.is_file():
        return path, None
    if path.is_dir():
        raise WeightsNotFoundError(f"weights {text!r} is a directory; give the checkpoint file inside it")
    if text.startswith(("http://", "https://")):
        name = _url_file_name(text) or hashlib.sha256(text.encode()).hexdigest()[:16] + ".pth"
        return download(text, _weights_dir() / name, progress=progress), None
    _ensure_loaded()
    with _LOCK:
        spec = _REGISTRY.get(text)
    if spec is not None:
        return _fetch_spec(spec, progress=progress), spec
    raise _not_found(text, f"weights {text!r} are neither an existing file, an http(s) URL nor a registered name")


def _fetch_spec(spec: WeightsSpec, *, progress: bool) -> Path:
    target = weights_path(spec)
    if spec.bundled is not None:
        if not target.is_file():
            raise WeightsNotFoundError(
                f"the bundled weights {spec.name!r} should be at {target} but are missing from this install; "
                f"reinstall streamseg (pip install --force-reinstall streamseg) or pass a checkpoint file instead"
            )
        return target
    assert spec.url is not None  # guaranteed by WeightsSpec.__post_init__
    return download(spec.url, target, sha256=spec.sha256, progress=progress)


# --------------------------------------------------------------------------------------------
# Built-in specs. Built on first registry use; nothing here touches the disk or the network.
# --------------------------------------------------------------------------------------------

_MMSEG = "https://download.openmmlab.com/mmsegmentation/v0.5"
_ADE20K_RUNS = {  # variant letter -> mmseg run stamp (date_time-sha256 prefix)
    "t": "20230210_140244-05bd8466",
    "s": "20230214_113014-43013668",
    "b": "20230209_172053-b6f6c70c",
    "l": "20230209_172055-19b14b63",
}
_CITYSCAPES_IDS = {  # variant letter -> cloud.tsinghua.edu.cn share id (the SegNeXt authors' release)
    "t": "b1613af9955849bba910",
    "s": "14148cf5371a4f248db1",
    "b": "adb49029f66f426bb046",
    "l": "b5308d092b034f81aac0",
}
_IN1K_HASHES = {"t": "119e8c9f", "s": "f33ccdf2", "b": "3ab7d230", "l": "cef260d4"}
_SIZE = {"t": "Tiny", "s": "Small", "b": "Base", "l": "Large"}


def _official(v: str, dataset: str, **fields: object) -> WeightsSpec:
    """A released SegNeXt/MSCAN checkpoint of size ``v`` (all Apache-2.0)."""
    return WeightsSpec(variant=f"segnext_{v}", license="Apache-2.0", dataset=dataset, **fields)  # type: ignore[arg-type]


def _builtin_specs() -> list[WeightsSpec]:
    from streamseg.weights.datasets import ADE20K_CLASSES, ADE20K_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

    specs = []
    for v, run in _ADE20K_RUNS.items():
        stem = f"segnext_mscan-{v}_1x16_512x512_adamw_160k_ade20k"
        specs.append(_official(
            v, "ADE20K", name=f"segnext_{v}_ade20k", num_classes=150, classes=ADE20K_CLASSES, palette=ADE20K_PALETTE,
            url=f"{_MMSEG}/segnext/{stem}/{stem}_{run}.pth", sha256=run.rsplit("-", 1)[1], test_scale=(2048, 512),
            description=f"SegNeXt-{_SIZE[v]}, ADE20K 512x512, 160k iterations (mmsegmentation release)",
        ))  # fmt: skip
    for v, share in _CITYSCAPES_IDS.items():
        specs.append(_official(
            v, "Cityscapes", name=f"segnext_{v}_cityscapes", num_classes=19, classes=CITYSCAPES_CLASSES,
            palette=CITYSCAPES_PALETTE, url=f"https://cloud.tsinghua.edu.cn/f/{share}/?dl=1",
            sha256=None,  # the authors published no hash: downloads are not verified
            file_name=f"segnext_{v}_cityscapes.pth", test_scale=(2048, 1024), slide=(1024, 768),
            nmf_rank=16 if v in "ts" else 64,
            description=f"SegNeXt-{_SIZE[v]}, Cityscapes 1024x1024, 160k iterations (SegNeXt authors' release)",
        ))  # fmt: skip
    for v, digest in _IN1K_HASHES.items():
        specs.append(_official(
            v, "ImageNet-1k", name=f"mscan_{v}_in1k", num_classes=0, classes=(), palette=(),
            url=f"{_MMSEG}/pretrain/segnext/mscan_{v}_20230227-{digest}.pth", sha256=digest, backbone_only=True,
            description=f"MSCAN-{_SIZE[v]} backbone pretrained on ImageNet-1k (for training SegNeXt-{v.upper()})",
        ))  # fmt: skip
    return specs
