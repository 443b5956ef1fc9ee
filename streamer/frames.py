"""What flows between live stages: timestamped frames, the voice's chunks, and the stage
contracts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# The voice, wherever it goes (WebRTC's Opus, the recording's AAC; streamer.voice hands it
# out so): 20 ms chunks of 48 kHz stereo, int16 interleaved, (1, 2 · VOICE_CHUNK) each.
VOICE_RATE = 48_000  # Opus's clock (RFC 7587), and the recording's AAC rate
VOICE_CHUNK = 960  # samples a channel: 20 ms, Opus's usual frame

# A live avatar frame's longer side, at most: pictures are enrolled at it by the live
# commands (streamer.offline.for_live) and WebRTC sends frames no larger. The avatar is
# drawn at its portrait's size: a 12-megapixel phone photo took `serve` about a second a
# frame to draw and VP8 a quarter of one to encode (2-core CPU, a busy hour), and the
# browser got 0.3 frames a second. A live frame is seen in a browser, a call, or a
# 1280x720 virtual camera; `animate` keeps the portrait's full size.
LIVE_MAX_SIDE = 1280


@dataclass(frozen=True)
class Frame:
    """One video frame and when it was captured.

    image: (H, W, 3) uint8, BGR.
    capture_ts: time.monotonic() at capture; carried to the sink so latency is measured.
    index: running number from the source, starting at 0.
    face: an avatar frame's head, (x, y) image pixels, where the processor says (a sink that
    cuts the frame to another shape keeps it in view); None: not known.
    """

    image: np.ndarray
    capture_ts: float
    index: int
    face: tuple[float, float] | None = None


class FrameProcessor(Protocol):
    """Turns a driving frame into an avatar frame (streamer.animate.Animator is one)."""

    def process(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 BGR driving frame → (h, w, 3) uint8 BGR avatar frame.

        Must return a frame for every input, also when no face is found (the avatar then
        eases to neutral). Not thread-safe: call from one thread.
        """
        ...

    def recalibrate(self) -> None:
        """Take the neutral reference again from the next steady frames."""
        ...

    def status(self) -> str | None:
        """What the avatar waits for (no face, the resting face being taken), in a few words
        for the person in front of the camera; None while it follows the face."""
        ...

    def close(self) -> None:
        """Release trackers and sessions; safe to call more than once."""
        ...


@runtime_checkable
class StagedProcessor(FrameProcessor, Protocol):
    """A FrameProcessor whose frame splits in two halves, process(x) = finish(prepare(x)),
    so the live pipeline can prepare frame n + 1 on one thread while it finishes frame n on
    another (two cores busy instead of one). Each half is called from one thread only."""

    def prepare(self, image: np.ndarray) -> object:
        """First half: driving frame → an intermediate only finish() reads."""
        ...

    def finish(self, prepared: object) -> np.ndarray:
        """Second half → the avatar frame, as process() would return it."""
        ...


class Sink(Protocol):
    """Where avatar frames go (virtual camera, WebRTC, preview window, file)."""

    name: str

    def open(self, width: int, height: int, fps: float) -> None:
        """Called exactly once before the first send; must raise SinkUnavailableError
        with a message saying what to install or run when the output cannot be opened."""
        ...

    def send(self, frame: Frame) -> None:
        """Deliver the newest frame. Must not block the caller for longer than one frame
        interval: a sink that cannot keep up drops older frames, never queues them."""
        ...

    def close(self) -> None:
        """Release the device/socket/window; safe to call more than once."""
        ...
