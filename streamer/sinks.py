"""Outputs for avatar frames, looked up by name: virtualcam, preview, record, and plug-ins.

Sinks are registered, not chosen in an if/elif chain, so the WebRTC module and tests can add
their own with register_sink(). The built-in ones live in streamer/sink_*.py and are only
imported when created (pyvirtualcam, a GUI or an encoder are not needed to import this).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from streamer.errors import SinkUnavailableError
from streamer.frames import Sink

SinkFactory = Callable[..., Sink]

_FACTORIES: dict[str, SinkFactory] = {}


def register_sink(name: str, factory: SinkFactory) -> None:
    """Make `create_sink(name, **kw)` call `factory(**kw)`; replaces an earlier registration."""
    _FACTORIES[name] = factory


def sink_names() -> list[str]:
    """Names that create_sink() accepts, sorted."""
    return sorted(_FACTORIES)


def check_sink_name(name: str) -> None:
    """Raise SinkUnavailableError, naming the known outputs, when `name` is not registered."""
    if name not in _FACTORIES:
        raise SinkUnavailableError(
            f"unknown output {name!r}: choose one of {', '.join(sink_names())}"
        )


def create_sink(name: str, **kw: Any) -> Sink:
    """A new, not yet opened sink. Raises SinkUnavailableError for an unknown name."""
    check_sink_name(name)
    return _FACTORIES[name](**kw)


# --- fitting an avatar frame into a fixed output size ------------------------------------


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def shrink_to(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image shrunk, its shape kept, to max_side on its longer side (as it is when not
    larger)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    return _resize(image, max(1, round(w * scale)), max(1, round(h * scale)))


def letterbox(image: np.ndarray, size: tuple[int, int],
              face: tuple[float, float] | None = None) -> np.ndarray:
    """The whole image, scaled to fit `size` (w, h), centred on black bars (the face is in
    view wherever it is)."""
    width, height = size
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    fw, fh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - fw) // 2, (height - fh) // 2
    canvas[y : y + fh, x : x + fw] = _resize(image, fw, fh)
    return canvas


def crop_to_fill(image: np.ndarray, size: tuple[int, int],
                 face: tuple[float, float] | None = None) -> np.ndarray:
    """The image scaled to cover `size` (w, h), the overflow cut equally from both sides, or
    so that `face` (image pixels) sits as near the middle as the image allows (cut equally,
    the Mona Lisa's face at 1280x720 was cut away: it is in the top third)."""
    width, height = size
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    cw, ch = min(w, round(width / scale)), min(h, round(height / scale))
    if face is None:
        x, y = (w - cw) // 2, (h - ch) // 2
    else:
        x = int(np.clip(round(face[0] - cw / 2), 0, w - cw))
        y = int(np.clip(round(face[1] - ch / 2), 0, h - ch))
    return _resize(image[y : y + ch, x : x + cw], width, height)


# image, (w, h), where the face is (image pixels; None: not known) → the fitted frame
FITS: dict[str, Callable[[np.ndarray, tuple[int, int], tuple[float, float] | None], np.ndarray]] = {
    "letterbox": letterbox,
    "crop": crop_to_fill,
}


def fit_frame(image: np.ndarray, size: tuple[int, int], fit: str,
              face: tuple[float, float] | None = None) -> np.ndarray:
    """image: (H, W, 3) uint8 → (size[1], size[0], 3) uint8, fitted by FITS[fit], keeping
    `face` (image pixels) in view where it is given."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    return FITS[fit](image, size, face)


# --- built-in sinks, imported on first use -----------------------------------------------


def _virtualcam(**kw: Any) -> Sink:
    from streamer.sink_virtualcam import VirtualCamConfig, VirtualCamSink

    return VirtualCamSink(VirtualCamConfig(**kw))


def _preview(**kw: Any) -> Sink:
    from streamer.sink_preview import PreviewConfig, PreviewSink

    callbacks = {key: kw.pop(key) for key in ("on_key", "overlay", "on_close") if key in kw}
    return PreviewSink(PreviewConfig(**kw), **callbacks)


def _record(**kw: Any) -> Sink:
    from streamer.sink_record import RecordConfig, RecordSink

    voice = kw.pop("voice", None)
    return RecordSink(RecordConfig(**kw), voice)


def _webrtc(**kw: Any) -> Sink:
    from streamer.webrtc_server import webrtc_sink  # aiortc is imported only when used

    return webrtc_sink(**kw)


def _whip(**kw: Any) -> Sink:
    from streamer.webrtc_client import whip_sink

    return whip_sink(**kw)


register_sink("virtualcam", _virtualcam)  # kw: VirtualCamConfig fields
register_sink("preview", _preview)  # kw: PreviewConfig fields, on_key, overlay, on_close
register_sink("record", _record)  # kw: RecordConfig fields (path=...), voice
register_sink("webrtc", _webrtc)  # kw: host, port, token, max_sessions, voice
register_sink("whip", _whip)  # kw: url, token, timeout_s, voice
