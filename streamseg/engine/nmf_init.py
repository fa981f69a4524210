"""Where the NMF's initial bases come from, per stream.

- ``reference``: mmseg's draw (one ``torch.rand`` per forward on the global CPU
  generator). Reproduces the parity fixtures, but a frame's mask then depends on
  its batch mates and on the RNG state.
- ``fixed``: one seeded basis set per stream, the same for every frame: deterministic
  and batch-invariant (a frame gives the same mask in any batch; bit-exact in fp32, while bf16
  convolution kernels may round differently per batch size: 1 pixel in 230k measured on a CPU).
- ``warm``: the previous frame's converged bases of the same stream (re-normalised),
  optionally with fewer NMF iterations; the first frame starts from ``fixed``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from streamseg.errors import ConfigError
from streamseg.model.ham_head import reference_bases

POLICIES = ("reference", "fixed", "warm")

__all__ = ["POLICIES", "BasesPolicy"]


class BasesPolicy:
    """Hands out initial bases for a batch of frames and remembers converged ones (``warm``)."""

    def __init__(self, policy: str, *, channels: int, rank: int, seed: int = 0, warm_steps: int | None = None) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"nmf_init must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy = policy
        self.channels = channels
        self.rank = rank
        self.seed = seed
        self.warm_steps = warm_steps
        self._fixed: Tensor | None = None
        self._fixed_on: dict[torch.device, Tensor] = {}  # a copy per device, made once: no upload per batch
        self._last: dict[str, Tensor] = {}

    def fixed_bases(self) -> Tensor:
        """``(D, R)`` bases from a private generator seeded with ``seed`` (never the global RNG)."""
        if self._fixed is None:
            g = torch.Generator().manual_seed(self.seed)
            self._fixed = F.normalize(torch.rand((1, self.channels, self.rank), generator=g), dim=1)[0]
        return self._fixed

    def _fixed_on_device(self, device: torch.device) -> Tensor:
        # a copy from pageable host memory per batch would synchronise a CUDA stream every time
        if device not in self._fixed_on:
            self._fixed_on[device] = self.fixed_bases().to(device)
        return self._fixed_on[device]

    def initial(self, stream_ids: Sequence[str], device: torch.device) -> tuple[Tensor, int | None]:
        """Bases ``(B, D, R)`` on ``device`` for frames of these streams, and the NMF step count (None = default)."""
        if self.policy == "reference":
            return reference_bases(len(stream_ids), self.channels, self.rank, device=device), None
        fixed = self._fixed_on_device(torch.device(device))
        if self.policy == "fixed":
            return fixed.expand(len(stream_ids), -1, -1), None
        rows = []
        warm = True
        for sid in stream_ids:
            last = self._last.get(sid)
            warm = warm and last is not None
            rows.append(last.to(device) if last is not None else fixed)
        return torch.stack(rows), (self.warm_steps if warm else None)

    def update(self, stream_ids: Sequence[str], converged: Tensor) -> None:
        """Remember converged bases for ``warm``; for a stream in the batch twice the later frame wins."""
        if self.policy != "warm":
            return
        converged = F.normalize(converged.detach().float(), dim=1)
        for i, sid in enumerate(stream_ids):
            self._last[sid] = converged[i]

    def reset(self, stream_id: str | None = None) -> None:
        """Forget warm state (e.g. after a stream discontinuity)."""
        if stream_id is None:
            self._last.clear()
        else:
            self._last.pop(stream_id, None)
