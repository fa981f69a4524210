"""Past one machine on Ray (``pip install 'streamseg[ray]'``): archives of files on actors, and Ray Data.

- :func:`run` (``streamseg run --ray``): every file of the config's sources segmented whole by one
  actor holding one engine, outputs named by templates (``{stem}``, ``{name}``, ``{parent}``,
  ``{index}``), dead workers' files retried, failed files reported (:mod:`.archive`).
- :class:`Segment`: a callable class for ``Dataset.map_batches`` (:mod:`.data`).

Importing this package does not import Ray; using it without Ray says which extra to install.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run", "Segment"]


def run(config: Any, address: str | None = None, **kwargs: Any) -> Any:
    """See :func:`streamseg.ray.archive.run`."""
    from streamseg.ray.archive import run as run_archive

    return run_archive(config, address, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Segment":
        from streamseg.ray.data import Segment

        return Segment
    raise AttributeError(name)
