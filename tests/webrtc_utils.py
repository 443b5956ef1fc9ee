"""Fakes and helpers for the WebRTC tests: a fake processor, a paced frame feeder, a
Python WHEP/WHIP receiver, and frame-id codes painted into frames (for latency)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from benchmarks.voice_sync import ToneTrack  # the hum lives with the voice benchmark
from benchmarks.webrtc_latency import (  # browser helpers live with the latency benchmark
    Feeder,
    browser_available,
    chromium,
    decode_data_url,
    wait_for_js,
    write_wav,
    write_y4m,
)
from streamer.errors import NoFaceError
from streamer.frames import VOICE_CHUNK, VOICE_RATE
from streamer.webrtc_client import EndpointConfig, WebRTCSession

# ---- fakes --------------------------------------------------------------------------

MARK_ROWS = 8  # FakeProcessor paints a white bar over the top rows


class FakeProcessor:
    """Flips the driving frame, paints a white bar on top and the frame index: plainly
    'processed' and different from frame to frame. Records the thread it runs on."""

    def __init__(self) -> None:
        self.frames = 0
        self.closed = 0
        self.portraits: list[object] = []
        self.threads: set[str] = set()
        self.avatar_threads: set[str] = set()  # where make_avatar ran
        self.recalibrations = 0
        self.said: str | None = None  # what status() says

    def status(self) -> str | None:
        return self.said

    def process(self, image: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        out = np.ascontiguousarray(image[:, ::-1])
        out[:MARK_ROWS] = 255
        cv2.putText(
            out,
            str(self.frames),
            (10, out.shape[0] - 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0,
            (0, 255, 255),
            2,
        )
        self.frames += 1
        return out

    def recalibrate(self) -> None:
        self.recalibrations += 1

    def close(self) -> None:
        self.closed += 1

    def make_avatar(self, portrait: object) -> object:
        self.avatar_threads.add(threading.current_thread().name)
        return portrait

    def set_portrait(self, portrait: object) -> None:
        self.portraits.append(portrait)


class FakeStagedProcessor(FakeProcessor):
    """A FakeProcessor in two halves (streamer.frames.StagedProcessor), as the Animator is:
    records each half's threads, and whether it was switched or recalibrated while a frame
    was between its halves (it must not be; closing drops a prepared frame, which is fine)."""

    def __init__(self, half_s: float = 0.0) -> None:
        super().__init__()
        self.half_s = half_s  # time each half takes
        self.prepare_threads: set[str] = set()
        self.finish_threads: set[str] = set()
        self.between = 0  # frames prepared, not yet finished
        self.overlapped = 0  # prepare() calls that ran while the other half was finishing
        self.finishing = False
        self.switched_mid_frame = 0
        self._lock = threading.Lock()

    def prepare(self, image: np.ndarray) -> np.ndarray:
        self.prepare_threads.add(threading.current_thread().name)
        with self._lock:
            self.overlapped += self.finishing
            self.between += 1
        time.sleep(self.half_s)
        return image

    def finish(self, prepared: object) -> np.ndarray:
        self.finish_threads.add(threading.current_thread().name)
        with self._lock:
            self.finishing = True
        time.sleep(self.half_s)
        out = self.process(prepared)  # type: ignore[arg-type]
        with self._lock:
            self.finishing = False
            self.between -= 1
        return out

    def set_portrait(self, portrait: object) -> None:
        self.switched_mid_frame += self.between != 0
        super().set_portrait(portrait)

    def recalibrate(self) -> None:
        self.switched_mid_frame += self.between != 0
        super().recalibrate()


@dataclass
class FakeFactory:
    """ProcessorFactory with FakeProcessors (FakeStagedProcessors with staged_s set: each
    half takes that long); enroll() refuses flat images (no face)."""

    processors: list[FakeProcessor] = field(default_factory=list)
    enrolled: list[tuple[int, int]] = field(default_factory=list)
    faces: list[int | None] = field(default_factory=list)  # the face number of each enroll
    staged_s: float | None = None

    def create(self) -> FakeProcessor:
        processor = FakeProcessor() if self.staged_s is None else FakeStagedProcessor(
            self.staged_s)
        self.processors.append(processor)
        return processor

    def enroll(self, image: np.ndarray, face: int | None = None) -> object:
        if float(image.std()) < 1.0:
            raise NoFaceError("no human face found in the portrait: use a photo of a face")
        self.enrolled.append(image.shape[:2])
        self.faces.append(face)
        return f"portrait-{len(self.enrolled)}"

    def make_avatar(self, processor: FakeProcessor, portrait: object) -> object:
        return processor.make_avatar(portrait)

    def apply(self, processor: FakeProcessor, avatar: object) -> None:
        processor.set_portrait(avatar)


# ---- frames -------------------------------------------------------------------------


def clip_frames(path: Path, count: int, size: int = 256) -> list[np.ndarray]:
    """The first `count` frames of a clip, resized to size × size BGR (small: cheap VP8)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < count:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    finally:
        capture.release()
    assert frames, f"no frames in {path}"
    return frames


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ---- receiving ----------------------------------------------------------------------


@dataclass
class Received:
    images: list[np.ndarray]
    times: list[float]  # time.monotonic() at receipt

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


async def receive(session: WebRTCSession, seconds: float, skip_s: float = 0.5) -> Received:
    """Read the session's remote video for `seconds` (after skipping the first `skip_s`)."""
    track = await asyncio.wait_for(session.remote_video, 10)
    images: list[np.ndarray] = []
    times: list[float] = []
    start = time.monotonic()
    with contextlib.suppress(MediaStreamError, asyncio.TimeoutError):
        while time.monotonic() - start < seconds + skip_s:
            frame = await asyncio.wait_for(track.recv(), 5)
            if time.monotonic() - start >= skip_s:
                images.append(frame.to_ndarray(format="bgr24"))
                times.append(time.monotonic())
    return Received(images, times)


async def whip_sessions_end(server, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    """Until a ServerThread (run on another loop) has no WHIP session, or `timeout` → the
    seconds it took."""
    start = time.monotonic()
    while server.server.count("whip") and time.monotonic() - start < timeout:
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def whep_hear(url: str, seconds: float = 1.0) -> np.ndarray:
    """What a WHEP viewer of a server at `url` hears over `seconds`, after its first second
    (the left channel, -1..1)."""
    viewer = await WebRTCSession.open(EndpointConfig(f"{url}/whep"), None, True,
                                      receive_audio=True)
    listener = Listener(await asyncio.wait_for(viewer.remote_audio, 10))
    try:
        await asyncio.sleep(1.0)
        return await listener.after(seconds)
    finally:
        listener.close()
        await viewer.close()


async def whep_receive(url: str, seconds: float, token: str | None = None) -> Received:
    session = await WebRTCSession.open(EndpointConfig(url, token), send=None, receive=True)
    try:
        return await receive(session, seconds)
    finally:
        await session.close()


# ---- audio --------------------------------------------------------------------------


class Listener:
    """Reads a received audio track in the background; heard(t0, t1) gives what arrived
    between two monotonic times (the left channel, -1..1)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self._chunks: list[tuple[float, np.ndarray]] = []
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                self._chunks.append((time.monotonic(), samples[:, 0] / 32768.0))

    def first_sound(self, level: float = 0.01) -> float | None:
        """When the first frame louder than `level` (peak) arrived, or None."""
        return next((at for at, c in self._chunks if np.abs(c).max() > level), None)

    def heard(self, t0: float, t1: float) -> np.ndarray:
        chunks = [c for at, c in self._chunks if t0 <= at < t1]
        return np.concatenate(chunks) if chunks else np.zeros(0)

    async def after(self, seconds: float, at_least: int = VOICE_RATE // 2) -> np.ndarray:
        """What arrives over the next `seconds`, and on until `at_least` samples have (half
        a second; up to 3 × `seconds` in all): a loop slowed by a busy machine skips frames
        rather than send them late, and two busy loops beside the tests once let 0.46 s of
        a viewer's second through."""
        start = time.monotonic()
        await asyncio.sleep(seconds)
        while (len(self.heard(start, time.monotonic())) < at_least
               and time.monotonic() - start < 3 * seconds):
            await asyncio.sleep(0.02)
        return self.heard(start, time.monotonic())

    def close(self) -> None:
        self._task.cancel()


def power_at(samples: np.ndarray, hz: float, rate: int = VOICE_RATE) -> float:
    """Spectral power of `samples` within 10 Hz of `hz`."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) <= 10].sum())


def frames_of(samples: np.ndarray, n: int = VOICE_CHUNK) -> np.ndarray:
    """`samples` cut into whole frames of `n` (20 ms: one received frame each) → (k, n); a
    part frame at the end is left out."""
    return samples[: len(samples) // n * n].reshape(-1, n)


def dominant_hz(samples: np.ndarray, rate: int = VOICE_RATE, window: int = VOICE_CHUNK) -> float:
    """The strongest frequency in `samples` (Hz): the median over 20 ms windows (one received
    frame each) of each window's spectral peak, read to 1 Hz (zero-padded). A relay that
    drops a frame under load (the newest wins) breaks the tone's phase at a frame's edge; one
    long spectrum then reads the tone a few Hz off (a 660 Hz hum missing every third frame
    reads 665), while each frame alone still holds it whole. Windows of silence (under half
    the loud windows' level: the relay's filler while a late sender's frame is not yet due)
    have no peak and do not vote; they once pulled a 550 Hz hum's median to 543 in CI."""
    n = min(len(samples), window)
    windows = frames_of(samples, n)
    levels = np.sqrt(np.mean(np.square(windows), axis=1))
    peaks = []
    for w in windows[levels >= 0.5 * np.percentile(levels, 90)]:
        spectrum = np.abs(np.fft.rfft(w * np.hanning(n), rate))
        peaks.append(int(np.argmax(spectrum[1:])) + 1)  # rfft over `rate` points: 1 Hz bins
    return float(np.median(peaks))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0


__all__ = [
    "Listener",
    "ToneTrack",
    "dominant_hz",
    "frames_of",
    "power_at",
    "rms",
    "FakeFactory",
    "FakeProcessor",
    "Feeder",
    "Received",
    "browser_available",
    "chromium",
    "clip_frames",
    "decode_data_url",
    "mean_abs_diff",
    "receive",
    "wait_for_js",
    "whep_hear",
    "whip_sessions_end",
    "whep_receive",
    "write_wav",
    "write_y4m",
]
