"""EngineConfig is checked when it is built, in the caller's thread."""

from __future__ import annotations

import pytest

from streamseg.config import from_dict
from streamseg.engine.config import EngineConfig
from streamseg.errors import ConfigError


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "fp17"}, "precision must be one of auto, fp32, bf16, fp16"),
        ({"backend": "tensorrt"}, "backend must be one of"),
        ({"nmf_init": "random"}, "nmf_init must be one of"),
        ({"device": "gpu"}, "device must be auto, cpu or cuda"),
        ({"precision": "fp16", "device": "cpu"}, "fp16 runs on CUDA only"),
        ({"backend": "openvino", "device": "cuda:0"}, "openvino' runs on the CPU"),
        ({"backend": "openvino", "compile": True}, "compile is a torch option"),
        ({"in_flight": 0}, "in_flight must be >= 1"),
        ({"warm_steps": 0}, "warm_steps must be >= 1"),
        ({"test_scale": (640, 0)}, "test_scale must be two positive integers"),
        ({"openvino_hint": "FAST"}, "openvino_hint must be LATENCY or THROUGHPUT"),
    ],
)
def test_bad_values_fail_at_construction(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig(**kwargs)


def test_from_yaml_data_names_the_key():
    with pytest.raises(ConfigError, match=r"engine\.precision: must be one of 'auto', 'fp32', 'bf16', 'fp16'"):
        from_dict(EngineConfig, {"precision": "fp17"}, where="engine")
    cfg = from_dict(EngineConfig, {"test_scale": "640x360", "device": "cuda:1"})
    assert cfg.test_scale == (640, 360) and cfg.device == "cuda:1"


def test_replace_names_the_closest_option():
    cfg = EngineConfig()
    assert cfg.replace(precision="fp32").precision == "fp32"
    with pytest.raises(ConfigError, match="unknown engine option 'nmf_inti'; did you mean 'nmf_init'"):
        cfg.replace(nmf_inti="warm")
    with pytest.raises(ConfigError, match="in_flight"):
        cfg.replace(in_flight=-1)


def test_cuda_graphs_option_is_checked_when_built():
    from streamseg.engine import EngineConfig
    from streamseg.errors import ConfigError

    assert EngineConfig().cuda_graphs == "auto"
    with pytest.raises(ConfigError, match="cuda_graphs"):
        EngineConfig(cuda_graphs="maybe")
    with pytest.raises(ConfigError, match="cuda_graphs 'on' needs"):
        EngineConfig(cuda_graphs="on", device="cpu")
    with pytest.raises(ConfigError, match="cuda_graphs 'on' needs"):
        EngineConfig(cuda_graphs="on", compile=True)


def test_cuda_graph_buckets_are_powers_of_two():
    from streamseg.engine.cuda_graphs import bucket_of

    assert [bucket_of(n) for n in (1, 2, 3, 4, 5, 8, 9, 33)] == [1, 2, 4, 4, 8, 8, 16, 64]


def test_cuda_graphs_on_without_a_gpu_says_so():
    import torch

    from streamseg.engine import Segmenter

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        Segmenter(None, model="segnext_t", num_classes=4, backend="torch", cuda_graphs="on")
