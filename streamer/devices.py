"""Where the generators run: `--device` → onnxruntime execution providers.

The runtime depends on `onnxruntime`, the CPU build. A GPU needs `onnxruntime-gpu` instead
(CUDA and TensorRT providers, the CPU one too); the two share one module, and with both
installed the CPU build is the one imported. So a GPU machine replaces it:

    pip uninstall -y onnxruntime && pip install --force-reinstall --no-deps onnxruntime-gpu

(--no-deps: resolved afresh, its numpy would be 2, which mediapipe 0.10.21 cannot take;
`headcast[gpu]` installs onnxruntime-gpu beside it; the same two steps then make it the one
in use.) "auto" takes CUDA where the onnxruntime in use has it, else the CPU; a device asked
for by name must be there, or DeviceUnavailableError says what to do. TensorRT builds an
engine for each model the first time (minutes) and keeps it in the cache folder, keyed by
model and GPU, so later starts skip the build; it may compute in half precision only where
the fp16 generator runs. Not run on a GPU yet: no GPU with
onnxruntime-gpu has been lent to this project.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from importlib import metadata
from pathlib import Path

from streamer.errors import DeviceUnavailableError

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
DEVICES: dict[str, tuple[str, ...]] = {
    "cpu": (CPU,),
    "cuda": (CUDA, CPU),
    "tensorrt": (TENSORRT, CUDA, CPU),
}
GPU_SETUP = ("pip uninstall -y onnxruntime && "
             "pip install --force-reinstall --no-deps onnxruntime-gpu")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def device_providers(device: str, available: Collection[str] | None = None) -> tuple[str, ...]:
    """The providers, in order, for --device auto|cpu|cuda|tensorrt (available: what the
    onnxruntime in use has; asked of it when None)."""
    have = set(available_providers() if available is None else available)
    if device == "auto":
        return DEVICES["cuda"] if CUDA in have else DEVICES["cpu"]
    if device not in DEVICES:
        raise ValueError(f"device must be auto or one of {', '.join(DEVICES)}, not {device!r}")
    wanted = DEVICES[device]
    if wanted[0] not in have:
        raise DeviceUnavailableError(
            f"--device {device}: the onnxruntime in use has no {wanted[0]} (it has "
            f"{', '.join(sorted(have))}); {_gpu_hint()}")
    return wanted


def _gpu_hint() -> str:
    installed = {name for name in ("onnxruntime", "onnxruntime-gpu") if _installed(name)}
    if installed == {"onnxruntime", "onnxruntime-gpu"}:
        return ("onnxruntime and onnxruntime-gpu are both installed, and the CPU build is the "
                f"one in use: {GPU_SETUP}")
    if "onnxruntime-gpu" not in installed:
        return f"a GPU needs onnxruntime-gpu in place of onnxruntime: {GPU_SETUP}"
    return "onnxruntime-gpu is installed but lacks it: see onnxruntime's provider requirements"


def _installed(distribution: str) -> bool:
    return installed_version(distribution) is not None


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (from its metadata, not importing it)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def session_providers(providers: Collection[str], half: bool = False
                      ) -> list[str | tuple[str, dict[str, str]]]:
    """onnxruntime's providers argument: those of `providers` the onnxruntime in use has (the
    CPU when none), TensorRT with its engine cache, and allowed half precision for the fp16
    generator only (half: the warp graph maps pixels, which half precision puts 0.25 px
    apart at the 512 crop)."""
    have = set(available_providers())
    out: list[str | tuple[str, dict[str, str]]] = []
    for name in [p for p in providers if p in have] or [CPU]:
        if name == TENSORRT:
            out.append((name, {"trt_engine_cache_enable": "True",
                               "trt_engine_cache_path": str(engine_cache()),
                               "trt_fp16_enable": str(half)}))
        else:
            out.append(name)
    return out


def engine_cache() -> Path:
    """Where TensorRT keeps the engines it builds: $XDG_CACHE_HOME/headcast/tensorrt."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "headcast" / "tensorrt"
