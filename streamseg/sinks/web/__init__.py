"""The ``web`` sink: a live page in the browser, ``/metrics`` for Prometheus, ``/healthz`` and ``/stats.json``.

Needs the ``web`` extra (``pip install 'streamseg[web]'``: aiohttp and prometheus-client).
"""

from streamseg.sinks.web.sink import WebSink, parse_address

__all__ = ["WebSink", "parse_address"]
