"""Past one machine on Ray (``pip install 'streamseg[ray]'``): archives of files on actors, and Ray Data.

- :func:`run` (``streamseg run --ray``): every file of the config's sources segmented whole by one
  actor holding one engine, outputs named by templates (``{stem}``, ``{name}``, ``{parent}``,
  ``{index}``), dead workers' files retried, failed files reported (:mod:`.archive`).
- :func:`serve`: live sources in long-lived actor pipelines, restarted when they die (:mod:`.live`).
- :class:`Segment`: a callable class for ``Dataset.map_batches`` (:mod:`.data`).

Importing this package does not import Ray; using it without Ray says which extra to install.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run", "serve", "Segment"]


def run(config: Any, address: str | None = None, **kwargs: Any) -> Any:
    """Files: :func:`streamseg.ray.archive.run`; live sources: :func:`streamseg.ray.live.serve` (until stopped)."""
    from streamseg.ray.jobs import is_live

    if config.sources and all(is_live(s.uri) for s in config.sources):
        return serve(config, address, **kwargs)
    from streamseg.ray.archive import run as run_archive

    return run_archive(config, address, **kwargs)


def serve(config: Any, address: str | None = None, **kwargs: Any) -> Any:
    """See :func:`streamseg.ray.live.serve`."""
    from streamseg.ray.live import serve as serve_live

    return serve_live(config, address, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Segment":
        from streamseg.ray.data import Segment

        return Segment
    raise AttributeError(name)
