"""--device → onnxruntime providers. No GPU here: what the onnxruntime in use has is stubbed."""

from __future__ import annotations

import numpy as np
import pytest

from streamer import devices
from streamer.devices import CPU, CUDA, TENSORRT, device_providers, session_providers
from streamer.errors import DeviceUnavailableError

CPU_BUILD = ["AzureExecutionProvider", CPU]  # what onnxruntime (the CPU build) lists
GPU_BUILD = [TENSORRT, CUDA, CPU]


def test_auto_takes_cuda_where_onnxruntime_has_it_else_the_cpu():
    assert device_providers("auto", CPU_BUILD) == (CPU,)
    assert device_providers("auto", GPU_BUILD) == (CUDA, CPU)
    assert device_providers("tensorrt", GPU_BUILD) == (TENSORRT, CUDA, CPU)
    assert device_providers("cpu", CPU_BUILD) == (CPU,)
    with pytest.raises(ValueError, match="device must be"):
        device_providers("gpu", GPU_BUILD)


@pytest.mark.parametrize("installed, says", [
    ({"onnxruntime"}, "a GPU needs onnxruntime-gpu in place of onnxruntime"),
    ({"onnxruntime", "onnxruntime-gpu"}, "both installed, and the CPU build is the one in use"),
])
def test_a_device_asked_for_that_is_not_there_says_how_to_get_it(monkeypatch, installed, says):
    monkeypatch.setattr(devices, "_installed", lambda name: name in installed)
    with pytest.raises(DeviceUnavailableError) as caught:
        device_providers("cuda", CPU_BUILD)
    message = str(caught.value)
    assert "--device cuda" in message and "no CUDAExecutionProvider" in message
    assert says in message and devices.GPU_SETUP in message


def test_sessions_get_the_providers_there_and_tensorrt_its_engine_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(devices, "available_providers", lambda: GPU_BUILD)
    (trt, options), cuda, cpu = session_providers((TENSORRT, CUDA, CPU), half=True)
    assert (trt, cuda, cpu) == (TENSORRT, CUDA, CPU)
    assert options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path / "headcast" / "tensorrt")
    assert options["trt_fp16_enable"] == "True"
    assert session_providers((TENSORRT,))[0][1]["trt_fp16_enable"] == "False"
    monkeypatch.setattr(devices, "available_providers", lambda: CPU_BUILD)
    assert session_providers((TENSORRT, CUDA, CPU)) == [CPU]  # those missing are skipped
    assert session_providers((CUDA,)) == [CPU]


def test_a_renderer_asked_for_cuda_on_a_cpu_build_renders_on_the_cpu(astronaut_portrait):
    from streamer.renderer import RendererConfig, create_renderer

    target = astronaut_portrait.crop_landmarks.copy()
    on_cpu = create_renderer(astronaut_portrait, RendererConfig(name="warp")).render(target)
    asked = RendererConfig(name="warp", providers=(CUDA, CPU))
    assert np.array_equal(create_renderer(astronaut_portrait, asked).render(target), on_cpu)


@pytest.mark.parametrize("command", [["animate", "-o", "out.mp4"], ["stream"], ["serve"]])
def test_the_commands_stop_on_a_missing_device_before_any_work(monkeypatch, capsys, tmp_path,
                                                               command):
    """Before the portrait is read (it does not exist here) or a camera opens."""
    from streamer.cli import main

    monkeypatch.setattr(devices, "available_providers", lambda: CPU_BUILD)
    monkeypatch.chdir(tmp_path)
    missing = str(tmp_path / "nobody.jpg")
    assert main([*command, "--portrait", missing, "--device", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "--device tensorrt" in err and "TensorrtExecutionProvider" in err
    assert "nobody.jpg" not in err


def test_tensorrt_may_compute_in_half_for_the_fp16_generator_only(monkeypatch):
    """The warp graph maps pixels (half precision would put them 0.25 px apart at the 512
    crop): its sessions never allow TensorRT half precision, even with --precision fp16."""
    import onnxruntime

    from streamer.renderer import RendererConfig, asset_dir, open_session

    asked: dict[str, object] = {}

    class Stop(Exception):
        pass

    def session(blob, options, providers):
        asked["providers"] = providers
        raise Stop

    monkeypatch.setattr(devices, "available_providers", lambda: GPU_BUILD)
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    config = RendererConfig(providers=devices.DEVICES["tensorrt"], precision="fp16")
    for key, half in (("warp_512", "False"), ("generator_small_fp16", "True")):
        with pytest.raises(Stop):
            open_session(asset_dir(config), key, config)
        (name, options), *rest = asked["providers"]
        assert name == TENSORRT and options["trt_fp16_enable"] == half and rest == [CUDA, CPU]
