"""The virtual camera sink: video apps (Zoom, Meet, OBS) see the avatar as a webcam."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from streamer.errors import SinkUnavailableError
from streamer.frames import Frame
from streamer.sinks import FITS, fit_frame

# What to install or run, per platform.system(), when no virtual camera device exists.
INSTALL_HINTS: dict[str, str] = {
    "Linux": (
        "create one with: sudo apt install v4l2loopback-dkms && "
        "sudo modprobe v4l2loopback devices=1 exclusive_caps=1"
    ),
    "Windows": "install OBS Studio ≥ 26 and start its Virtual Camera once (then stop it)",
    "Darwin": "install OBS Studio ≥ 30 and start its Virtual Camera once (then stop it)",
}


def install_hint(system: str | None = None) -> str:
    """What to do about a missing virtual camera on `system` (default: this machine)."""
    system = system or platform.system()
    return INSTALL_HINTS.get(system, "no virtual camera is supported on " + system)


@dataclass(frozen=True)
class VirtualCamConfig:
    size: tuple[int, int] = (1280, 720)  # (width, height) that video apps see
    fit: str = "letterbox"  # avatar → size: "letterbox" (whole, black bars) or "crop" (fill)
    fps: float | None = None  # rate announced to the device; None: the source's frame rate
    device: str | None = None  # e.g. "/dev/video2"; None: the first free virtual camera
    backend: str | None = None  # pyvirtualcam backend name; None: try every registered one


class VirtualCamSink:
    """Avatar frames to a pyvirtualcam device, fitted to config.size, sent as BGR.

    pyvirtualcam converts BGR to the device's native format itself (libyuv), so frames go
    out without an extra conversion in Python.
    """

    name = "virtualcam"

    def __init__(self, config: VirtualCamConfig = VirtualCamConfig()) -> None:
        if config.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, not {config.fit!r}")
        self._config = config
        self._camera = None  # pyvirtualcam.Camera once open

    @property
    def device(self) -> str | None:
        """The device in use (e.g. /dev/video2), once open."""
        return self._camera.device if self._camera is not None else None

    def open(self, width: int, height: int, fps: float) -> None:
        import pyvirtualcam

        out_w, out_h = self._config.size
        backend = self._config.backend
        if backend is not None and backend not in pyvirtualcam.camera.BACKENDS:
            raise SinkUnavailableError(f"no pyvirtualcam backend {backend!r}; {install_hint()}")
        try:
            self._camera = pyvirtualcam.Camera(
                out_w,
                out_h,
                self._config.fps or fps,
                fmt=pyvirtualcam.PixelFormat.BGR,
                device=self._config.device,
                backend=backend,
            )
        except Exception as exc:  # pyvirtualcam raises RuntimeError listing each backend's error
            raise SinkUnavailableError(
                f"no virtual camera device ({_one_line(exc)}): {install_hint()}"
            ) from exc

    def send(self, frame: Frame) -> None:
        if self._camera is None:
            raise RuntimeError("VirtualCamSink.send before open")
        self._camera.send(fit_frame(frame.image, self._config.size, self._config.fit, frame.face))

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
