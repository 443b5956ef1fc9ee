"""Fakes where live stages meet: a processor, a camera reader, a sink, a pyvirtualcam backend."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import HeadcastError, SinkUnavailableError
from streamer.frames import Frame
from streamer.sources import CaptureConfig, ThreadedSource


def numbered_image(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """(h, w, 3) uint8 BGR whose pixels all equal index % 256: the index survives resizing.
    The left quarter is black, so a mirrored frame can be told apart."""
    width, height = size
    image = np.full((height, width, 3), index % 256, np.uint8)
    image[:, : width // 4] = 0
    return image


def image_number(image: np.ndarray) -> int:
    """The index % 256 that numbered_image() painted (read from the right side)."""
    return int(image[image.shape[0] // 2, -1, 0])


class FakeProcessor:
    """A FrameProcessor + set_portrait/set_pose_transfer that resizes the driving frame to a
    square output, optionally taking `delay_s` per frame, and records how it was driven."""

    def __init__(self, size: int = 96, delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.size = size
        self.delay_s = delay_s
        self.fail_at = fail_at  # raise RuntimeError on this call number
        self.calls = 0
        self.recalibrations = 0
        self.portraits: list[object] = []
        self.pose_transfer: list[bool] = []
        self.threads: set[int] = set()  # threads that touched it
        self.inputs: list[np.ndarray] = []  # last few driving frames
        self.closed = 0
        self.avatar_threads: set[int] = set()  # where make_avatar ran
        self.avatar_gate: threading.Event | None = None  # make_avatar waits for it when set
        self.unusable: object = None  # the portrait make_avatar refuses

    def status(self) -> str | None:
        return None

    def process(self, image: np.ndarray) -> np.ndarray:
        self.threads.add(threading.get_ident())
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("fake processor failed")
        self.inputs = [*self.inputs[-4:], image]
        if self.delay_s:
            time.sleep(self.delay_s)
        return cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_NEAREST)

    def recalibrate(self) -> None:
        self.threads.add(threading.get_ident())
        self.recalibrations += 1

    def make_avatar(self, portrait: object) -> object:
        self.avatar_threads.add(threading.get_ident())
        if self.avatar_gate is not None:
            self.avatar_gate.wait(5.0)  # (a failed test does not hang the pipeline's close)
        if portrait == self.unusable:
            raise HeadcastError(f"portrait {portrait!r} cannot be made ready")
        return ("avatar", portrait)

    def set_portrait(self, portrait: object) -> None:
        self.threads.add(threading.get_ident())
        self.portraits.append(portrait)

    def set_pose_transfer(self, enabled: bool) -> None:
        self.threads.add(threading.get_ident())
        self.pose_transfer.append(enabled)

    def close(self) -> None:
        self.closed += 1


class FakeStagedProcessor(FakeProcessor):
    """FakeProcessor split in halves (streamer.frames.StagedProcessor): prepare() takes
    `prepare_s`, finish() `finish_s`. Records each half's threads and time spans, and fails
    the run if the portrait is switched while a frame is between prepare and finish."""

    def __init__(self, size: int = 96, prepare_s: float = 0.0, finish_s: float = 0.0,
                 fail_finish_at: int | None = None) -> None:
        super().__init__(size)
        self.prepare_s, self.finish_s = prepare_s, finish_s
        self.fail_finish_at = fail_finish_at
        self.prepare_threads: set[int] = set()
        self.finish_threads: set[int] = set()
        self.spans: dict[str, list[tuple[float, float]]] = {"prepare": [], "finish": []}
        self.in_flight = 0
        self.finished = 0

    def prepare(self, image: np.ndarray) -> np.ndarray:
        self.prepare_threads.add(threading.get_ident())
        start = time.monotonic()
        self.calls += 1
        self.in_flight += 1
        self.inputs = [*self.inputs[-4:], image]
        time.sleep(self.prepare_s)
        self.spans["prepare"].append((start, time.monotonic()))
        return image

    def finish(self, prepared: object) -> np.ndarray:
        assert isinstance(prepared, np.ndarray)
        self.finish_threads.add(threading.get_ident())
        start = time.monotonic()
        self.finished += 1
        if self.fail_finish_at is not None and self.finished >= self.fail_finish_at:
            raise RuntimeError("fake finish failed")
        time.sleep(self.finish_s)
        self.in_flight -= 1
        self.spans["finish"].append((start, time.monotonic()))
        return cv2.resize(prepared, (self.size, self.size), interpolation=cv2.INTER_NEAREST)

    def process(self, image: np.ndarray) -> np.ndarray:
        return self.finish(self.prepare(image))

    def set_portrait(self, portrait: object) -> None:
        if self.in_flight:
            raise RuntimeError("portrait switched with a frame in flight")
        super().set_portrait(portrait)


class FakeCameraReader:
    """A FrameReader that behaves like a webcam: paces itself at `fps`, delivers
    numbered_image(i), and from read number `fail_after` on fails every read (unplugged);
    with `back_after_reopens` it delivers again once reopened that many times (plugged back)."""

    def __init__(
        self, fps: float = 60.0, size: tuple[int, int] = (64, 48), fail_after: int | None = None,
        back_after_reopens: int | None = None, image: np.ndarray | None = None,
    ) -> None:
        self.fps = fps
        self.size = size
        self.fail_after = fail_after
        self.back_after_reopens = back_after_reopens
        self.image = image  # delivered instead of numbered images when set
        self.reads = 0
        self.failed_reads = 0
        self.reopens = 0
        self.closed = 0
        self._next = time.monotonic()

    def read(self) -> np.ndarray | None:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            self.failed_reads += 1
            return None  # a vanished device fails at once, without waiting
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + 1 / self.fps, time.monotonic())
        return numbered_image(self.reads - 1, self.size) if self.image is None else self.image

    def rewind(self) -> bool:
        return False

    def reopen(self) -> bool:
        self.reopens += 1
        if self.back_after_reopens is not None and self.reopens >= self.back_after_reopens:
            self.fail_after = None
            return True
        return False

    def close(self) -> None:
        self.closed += 1


def fake_camera(
    fps: float = 60.0, fail_after: int | None = None, lost_after_s: float = 0.3,
    camera_wait_s: float = 0.0, back_after_reopens: int | None = None,
    image: np.ndarray | None = None,
) -> tuple[ThreadedSource, FakeCameraReader]:
    """A ThreadedSource over a FakeCameraReader; a lost camera is reopened every 50 ms for
    camera_wait_s (0: reported lost at once)."""
    reader = FakeCameraReader(fps=fps, fail_after=fail_after,
                              back_after_reopens=back_after_reopens, image=image)
    config = CaptureConfig(lost_after_s=lost_after_s, retry_interval_s=0.02,
                           camera_wait_s=camera_wait_s, reopen_interval_s=0.05)
    source = ThreadedSource(
        reader, name="fake camera", loop=False, realtime=False, is_file=False, config=config
    )
    return source, reader


@dataclass
class Received:
    index: int
    capture_ts: float
    received_ts: float  # after the (possibly slow) send returned
    shape: tuple[int, ...]
    number: int  # image_number() of the image


@dataclass
class FakeSink:
    """A Sink that records what it got; `delay_s` makes it slow, `unavailable` makes open()
    fail the way a missing device does, `gone_at` send() of that many frames in (a device
    that went away)."""

    name: str = "fake"
    delay_s: float = 0.0
    unavailable: bool = False
    gone_at: int | None = None
    main_thread: bool = False  # like the preview window: driven by Pipeline.run()
    threads: set[int] = field(default_factory=set)  # threads that called send()
    opened: list[tuple[int, int, float]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # the last few
    closed: int = 0

    def open(self, width: int, height: int, fps: float) -> None:
        if self.unavailable:
            raise SinkUnavailableError(f"{self.name}: no such device (install the fake driver)")
        self.opened.append((width, height, fps))

    def send(self, frame: Frame) -> None:
        if self.gone_at is not None and len(self.received) >= self.gone_at:
            raise SinkUnavailableError(f"{self.name}: the device went away")
        self.threads.add(threading.get_ident())
        if self.delay_s:
            time.sleep(self.delay_s)
        self.received.append(
            Received(
                frame.index,
                frame.capture_ts,
                time.monotonic(),
                frame.image.shape,
                image_number(frame.image),
            )
        )
        self.images = [*self.images[-4:], frame.image]

    def close(self) -> None:
        self.closed += 1


class FakeCamBackend:
    """A pyvirtualcam backend (see pyvirtualcam/camera.py::Backend) that records every frame.

    Register a fresh subclass per test (fake_cam_backend()) so records do not leak."""

    instances: list[FakeCamBackend] = []

    def __init__(
        self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: object
    ) -> None:
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or "/dev/fake-video"
        self.sent_at: list[float] = []
        self.sizes: list[int] = []
        self.last: np.ndarray | None = None  # last frame, reshaped (h, w, 3)
        self.closed = 0
        type(self).instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.sent_at.append(time.monotonic())
        self.sizes.append(frame.size)
        self.last = frame.reshape(self.height, self.width, 3).copy()

    def close(self) -> None:
        self.closed += 1

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None


def fake_cam_backend(name: str = "fake") -> type[FakeCamBackend]:
    """Register a fresh FakeCamBackend subclass under `name` with pyvirtualcam; returns it."""
    import pyvirtualcam

    backend = type("FakeCamBackendUnderTest", (FakeCamBackend,), {"instances": []})
    pyvirtualcam.register_backend(name, backend)
    return backend


class MissingDeviceBackend:
    """A pyvirtualcam backend that finds no device, like v4l2loopback without the module."""

    def __init__(self, **kw: object) -> None:
        raise RuntimeError("No v4l2 loopback device found at /dev/video[0-99].")


def write_clip(path: Path, frames: int, fps: float, size: tuple[int, int] = (64, 48)) -> Path:
    """A small mp4 of numbered_image(i) frames, for file-source tests."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(numbered_image(i * 8, size))
    writer.release()
    return path
