"""A local Ray instance started by the tests (two CPUs, no GPU), and a tiny model saved as a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'streamseg[ray]'")


@pytest.fixture(scope="session")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="streamseg")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Random segnext_t weights (4 classes) as a plain state dict: every worker loads the same model."""
    import torch

    from streamseg.model import build_segnext

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_segnext_t.pth"
    torch.save(build_segnext("segnext_t", num_classes=4).state_dict(), path)
    return path


@pytest.fixture
def engine_options(tiny_weights: Path) -> dict:
    """fp32 torch at the frames' own size: fast, and exact between processes."""
    return {"weights": str(tiny_weights), "model": "segnext_t", "num_classes": 4, "backend": "torch",
            "precision": "fp32", "device": "cpu", "test_scale": (64, 48)}  # fmt: skip


@pytest.fixture
def actor_named(local_ray):
    """``actor_named(prefix)``: the running actor whose name starts with ``prefix`` (names carry a run suffix)."""

    def find(prefix: str):
        for entry in local_ray.util.list_named_actors(all_namespaces=True):
            if entry["name"].startswith(prefix):
                return local_ray.get_actor(entry["name"], namespace=entry["namespace"])
        raise LookupError(prefix)

    return find
