"""Sinks: where predictions go. ``open_sink("video:out.mp4")`` builds one from a ``KIND:TARGET`` spec.

Built-in kinds::

    masks:DIR          class-id PNGs (or masks.npz) per frame        MaskSink
    video:PATH         drawn overlay encoded to H.264                 VideoSink
    rtsp:URL           drawn overlay published to an RTSP server      RtspSink   (a bare rtsp:// URL works too)
    display[:TITLE]    an OpenCV window; q/Esc requests a stop        DisplaySink
    callback:MOD:FUNC  calls the function MOD.FUNC(prediction)        CallbackSink
    web[:HOST:PORT]    a live page in the browser, /metrics, /healthz WebSink     (extra: streamseg[web])

Plugins add kinds through the ``streamseg.sinks`` entry-point group.

Several sources in one sink: predictions are routed by ``frame.source_id``.
While a sink has seen one source id it writes its target as given. When a
second id arrives every source gets its own output, the first one's moved
aside: ``masks:out/`` -> ``out/<id>/``, ``video:out.mp4`` -> ``out.<id>.mp4``,
``rtsp://host/live`` -> ``rtsp://host/live/<id>``, ``display`` -> one window
per source. Put ``{source}`` in the target (``video:out-{source}.mp4``) to
get per-source outputs from the first frame on. Ids are made file-name safe
(anything outside ``A-Za-z0-9._-`` becomes ``_``).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from streamseg.errors import ConfigError
from streamseg.registry import Registry, lazy_attribute
from streamseg.sinks.base import BaseSink, Sink, SinkContext

#: kind name -> factory ``(target, **options) -> Sink``; built-ins load on first use, plugins by entry point.
SINKS: Registry[Sink] = Registry(
    "streamseg.sinks",
    {
        "masks": "streamseg.sinks.masks:MaskSink",
        "video": "streamseg.sinks.video:VideoSink",
        "rtsp": "streamseg.sinks.rtsp:RtspSink",
        "display": "streamseg.sinks.display:DisplaySink",
        "callback": "streamseg.sinks.callback:callback_from_path",
        "web": "streamseg.sinks.web:WebSink",
    },
)

__all__ = [
    "SINKS",
    "Sink",
    "SinkContext",
    "BaseSink",
    "open_sink",
    "parse_sink_spec",
    "MaskSink",
    "VideoSink",
    "RtspSink",
    "DisplaySink",
    "CallbackSink",
    "WebSink",
]

_EXAMPLES = {
    "masks": "masks:out/masks",
    "video": "video:out.mp4",
    "rtsp": "rtsp:rtsp://127.0.0.1:8554/seg",
    "display": "display or display:Title",
    "callback": "callback:mypackage.module:function",
    "web": "web or web:127.0.0.1:8080",
}
_URL = re.compile(r"^rtsps?://", re.IGNORECASE)


def parse_sink_spec(spec: str) -> tuple[str, str | None]:
    """``"video:out.mp4"`` -> ``("video", "out.mp4")``; ``"display"`` -> ``("display", None)``.

    Only the first ``:`` separates, so targets may contain colons
    (``rtsp:rtsp://h:8554/x``, ``video:C:/clips/out.mp4``); a bare
    ``rtsp://`` or ``rtsps://`` URL means the rtsp sink.
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty sink spec; write KIND:TARGET, e.g. video:out.mp4 or masks:out/")
    if _URL.match(spec):
        return "rtsp", spec
    kind, sep, target = spec.partition(":")
    kind = kind.strip().lower()
    if not kind:
        raise ConfigError(f"sink spec {spec!r} has no kind; write KIND:TARGET, e.g. video:out.mp4")
    return kind, (target if sep else None)


def open_sink(spec: str, **options: Any) -> Sink:
    """Build the sink a ``KIND:TARGET`` spec names, passing ``options`` as keyword arguments.

    The sink is constructed, not opened: the pipeline calls ``open(context)``
    in the sink's thread. Unknown kinds and options are :class:`ConfigError`.
    """
    kind, target = parse_sink_spec(spec)
    factory = SINKS.get(kind)
    args = () if target is None or (target == "" and kind in ("display", "web")) else (target,)
    try:
        inspect.signature(factory).bind(*args, **options)
    except TypeError as exc:
        example = _EXAMPLES.get(kind, f"{kind}:TARGET")
        raise ConfigError(f"sink {spec!r}: {exc}; write it like {example}") from exc
    except ValueError:  # a factory without a signature (C extension): let it check for itself
        pass
    sink = factory(*args, **options)
    if getattr(sink, "name", None) in (None, ""):
        sink.name = spec
    return sink


_LAZY = {
    "MaskSink": "streamseg.sinks.masks",
    "VideoSink": "streamseg.sinks.video",
    "RtspSink": "streamseg.sinks.rtsp",
    "DisplaySink": "streamseg.sinks.display",
    "CallbackSink": "streamseg.sinks.callback",
    "WebSink": "streamseg.sinks.web",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
