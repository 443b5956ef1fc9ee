"""Where driving frames come from: a webcam or a video file, newest frame first.

A capture thread reads frames as fast as the camera (or the file's own frame rate) gives
them, stamps each with time.monotonic() and leaves it in a one-slot mailbox that keeps
only the newest frame. The consumer never sees a backlog: latency cannot grow with time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import cv2
import numpy as np

from streamer.errors import SourceLostError, VideoReadError, not_a_file
from streamer.frames import Frame

log = logging.getLogger(__name__)

T = TypeVar("T")


class NewestSlot(Generic[T]):
    """One-item mailbox between two threads, newest wins.

    put() never blocks: when the slot is full it DROPS the unread item and keeps the new one.
    get() blocks until an item arrives, the timeout passes or the slot is closed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0  # items replaced before anyone got them

    def put(self, item: T) -> None:
        """Leave `item` for the reader, dropping an unread older one. Ignored once closed."""
        with self._cond:
            if self._closed:
                return
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item (and empty the slot), or None on timeout or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting get(); later put()s are ignored. Safe to call more than once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def empty(self) -> bool:
        return not self._full


class Source(Protocol):
    """Driving frames, newest first (CameraSource and VideoFileSource are sources)."""

    name: str
    fps: float  # nominal frames per second; sinks are opened at this rate

    @property
    def waiting(self) -> bool:
        """True while a camera that stopped delivering is being reopened: no frames come for
        now, and the pipeline keeps the avatar going without them."""
        ...

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not read yet, waiting up to `timeout` seconds; None if none came.

        Frames captured while the caller was busy are dropped, never queued. Must raise
        SourceLostError once a camera stopped delivering and did not come back (instead of
        returning None forever) and EOFError when a non-looping file has ended or the source
        was closed.
        """
        ...

    def close(self) -> None:
        """Stop capturing and join the capture thread; safe to call more than once."""
        ...


class PacedReader:
    """Reads a Source for a consumer that must keep going while its camera is away: while the
    source reopens a camera that stopped delivering (`waiting`), `read` gives a black frame
    of the last frame's size at the source's rate. A tracker finds no face in it, so the
    avatar eases to rest and blinks now and then, and every output keeps getting frames (a
    video call sees the avatar resting, not a frozen picture; a WHIP session stays open)."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._shape: tuple[int, ...] | None = None  # of the last camera frame
        self._next_black = 0.0  # when the next black frame is due while the camera is away

    def read(self, timeout: float, index: int = -1) -> Frame | None:
        """The source's newest frame, waiting at most `timeout` seconds (less when a black
        frame falls due sooner), or a black one numbered `index` when due; else None.
        Raises as Source.read does."""
        standing_in = self._source.waiting and self._shape is not None
        if standing_in:
            timeout = min(timeout, max(0.0, self._next_black - time.monotonic()))
        frame = self._source.read(timeout=timeout)
        if frame is not None:
            self._shape = frame.image.shape
            return frame
        if not self._source.waiting or self._shape is None:
            return None
        now = time.monotonic()
        if now < self._next_black:
            return None
        self._next_black = max(self._next_black, now) + 1.0 / self._source.fps
        return Frame(np.zeros(self._shape, np.uint8), now, index)


class FrameReader(Protocol):
    """Blocking frame grabber behind a source; used by exactly one capture thread."""

    fps: float  # frames per second the device or file reports; 0.0 when unknown

    def read(self) -> np.ndarray | None:
        """The next (H, W, 3) uint8 BGR frame, or None when this read failed or the file ended."""
        ...

    def rewind(self) -> bool:
        """Go back to the first frame; False where that is impossible (cameras)."""
        ...

    def reopen(self) -> bool:
        """Release the device and open it again (a camera that stopped delivering); True when
        it opened."""
        ...

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""
        ...


@dataclass(frozen=True)
class CaptureConfig:
    lost_after_s: float = 2.0  # a camera whose reads all fail for this long is lost ...
    # ... and then reopened every reopen_interval_s for up to camera_wait_s (the avatar rests
    # meanwhile, and the outputs keep going) before SourceLostError; 0: at once. A camera
    # that stops for a moment (a USB hiccup, another app taking it, a cable pulled and put
    # back) used to end `stream`, and with it the virtual camera a video call was showing.
    camera_wait_s: float = 300.0
    reopen_interval_s: float = 1.0
    retry_interval_s: float = 0.05  # pause after a failed read, so a dead camera never spins
    camera_size: tuple[int, int] | None = None  # (w, h) asked of a camera; None: its default
    camera_fps: float | None = None  # frame rate asked of a camera; None: its default
    default_fps: float = 30.0  # used when the device or file does not report its rate


class OpenCVReader:
    """cv2.VideoCapture as a FrameReader (a camera index, a device path or a video file)."""

    def __init__(self, target: int | str, config: CaptureConfig = CaptureConfig()) -> None:
        self._target = target
        self._config = config
        self._capture = self._open()
        self._closed = False
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self._target)
        if not capture.isOpened():
            return capture
        if isinstance(self._target, int):
            # A one-frame driver buffer: older frames would only add latency.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self._config.camera_size is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._config.camera_size[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._config.camera_size[1])
            if self._config.camera_fps is not None:
                capture.set(cv2.CAP_PROP_FPS, self._config.camera_fps)
        else:  # a file or device path: upright as its display matrix says (as video_io reads)
            capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        return capture

    def is_opened(self) -> bool:
        return self._capture.isOpened()

    def read(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return image if ok and image is not None and image.size else None

    def reopen(self) -> bool:
        self._capture.release()
        self._capture = self._open()
        return self._capture.isOpened()

    def rewind(self) -> bool:
        if self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return True
        return self.reopen()  # some containers cannot seek: open the file again

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._capture.release()


class ThreadedSource:
    """A capture thread around a FrameReader, handing the newest frame over in a NewestSlot.

    realtime=True paces reads at the reader's frame rate (a video file played as a camera);
    loop=True rewinds at the end of a file (is_file=True). A camera (is_file=False) whose reads
    keep failing for config.lost_after_s is lost: it is reopened every
    config.reopen_interval_s (`waiting` is True meanwhile) and reported with SourceLostError
    when it has not come back within config.camera_wait_s; failed reads are retried every
    config.retry_interval_s, never in a busy loop.
    """

    def __init__(
        self,
        reader: FrameReader,
        *,
        name: str,
        loop: bool,
        realtime: bool,
        is_file: bool,
        config: CaptureConfig = CaptureConfig(),
    ) -> None:
        self.name = name
        self.fps = reader.fps if reader.fps > 0 else config.default_fps
        self._reader = reader
        self._loop = loop
        self._realtime = realtime
        self._is_file = is_file
        self._config = config
        self._slot: NewestSlot[Frame] = NewestSlot()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._index = 0  # index of the next captured frame; keeps counting across loops
        self._waiting = False  # a lost camera is being reopened
        self._reopened_at = 0.0  # when it was last reopened
        self._thread = threading.Thread(target=self._run, name=f"capture:{name}", daemon=True)
        self._thread.start()

    @property
    def captured(self) -> int:
        """Frames captured so far (read or dropped)."""
        return self._index

    @property
    def waiting(self) -> bool:
        return self._waiting

    @property
    def dropped(self) -> int:
        """Frames captured but replaced by a newer one before anyone read them."""
        return self._slot.dropped

    def read(self, timeout: float | None = None) -> Frame | None:
        frame = self._slot.get(timeout)
        if frame is not None:
            return frame
        if self._slot.closed:
            raise self._error if self._error is not None else EOFError(f"{self.name}: closed")
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._slot.close()
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():  # a driver stuck in read(): the thread releases on exit
            log.warning("%s: capture thread did not stop within 5 s", self.name)

    def __enter__(self) -> ThreadedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self._capture_loop()
        except BaseException as exc:  # handed to the consumer's next read()
            self._error = exc
        finally:
            self._slot.close()
            self._reader.close()

    def _capture_loop(self) -> None:
        period = 1.0 / self.fps
        due = time.monotonic()
        failing_since: float | None = None  # first of the current run of failed reads
        fails = 0  # failed reads in that run
        while not self._stop.is_set():
            image = self._reader.read()
            if image is None:
                self._after_failed_read(failing_since, fails)
                failing_since = failing_since or time.monotonic()
                fails += 1
                continue
            failing_since, fails = None, 0
            if self._waiting:
                self._waiting = False
                log.warning("%s is back", self.name)
            if self._realtime:
                due = self._wait_until(due, period)
            self._slot.put(Frame(image, time.monotonic(), self._index))
            self._index += 1

    def _wait_until(self, due: float, period: float) -> float:
        """Sleep until `due`; returns when the next frame is due. Never bursts to catch up."""
        delay = due - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
        return max(due + period, time.monotonic() - period)

    def _after_failed_read(self, failing_since: float | None, fails: int) -> None:
        if self._is_file:
            self._after_end_of_file(fails)
            return
        config = self._config
        now = time.monotonic()
        failing_for = now - (failing_since or now)
        if failing_for >= config.lost_after_s + config.camera_wait_s:
            waited = f", nor came back within {config.camera_wait_s:g} s" if self._waiting else ""
            raise SourceLostError(
                f"{self.name} stopped delivering frames ({failing_for:.1f} s without one{waited}):"
                " check that it is plugged in and not in use by another app"
            )
        if failing_for >= config.lost_after_s:
            if not self._waiting:
                self._waiting = True
                log.warning("%s stopped delivering frames: reopening it every %g s for up to "
                            "%g s; the avatar rests meanwhile", self.name,
                            config.reopen_interval_s, config.camera_wait_s)
            if now - self._reopened_at >= config.reopen_interval_s:
                self._reopened_at = now
                self._reader.reopen()
        self._stop.wait(config.retry_interval_s)

    def _after_end_of_file(self, fails: int) -> None:
        """fails: reads that failed before this one since the last frame. The file is rewound;
        where the seek back says yes and still gives no frame (a clip of one frame, a
        picture: OpenCV's seek "succeeds" there), it is opened again."""
        if not self._loop:
            raise EOFError(f"{self.name}: end of video")
        if fails == 0 and self._reader.rewind():
            return
        if fails <= 1 and self._reader.reopen():
            return
        raise VideoReadError(f"{self.name}: no decodable frame after rewinding the video")


class CameraSource(ThreadedSource):
    """A webcam (index like 0, or a device path like /dev/video2) through OpenCV."""

    def __init__(self, index_or_path: int | str, config: CaptureConfig = CaptureConfig()) -> None:
        reader = OpenCVReader(index_or_path, config)
        if not reader.is_opened():
            reader.close()
            raise SourceLostError(
                f"camera {index_or_path} could not be opened: check that it is plugged in and "
                "not in use by another app, try another --camera index, or drive the avatar "
                "from a video with --driving clip.mp4"
            )
        super().__init__(
            reader,
            name=f"camera {index_or_path}",
            loop=False,
            realtime=False,  # the camera paces itself
            is_file=False,
            config=config,
        )


class VideoFileSource(ThreadedSource):
    """A video file played like a camera: paced at its own frame rate, looping by default.

    Raises VideoReadError when the file is missing, not a video or has no decodable frame.
    """

    def __init__(
        self,
        path: str | Path,
        loop: bool = True,
        realtime: bool = True,
        config: CaptureConfig = CaptureConfig(),
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise VideoReadError(not_a_file(path))
        reader = OpenCVReader(str(path), config)
        first = reader.read() if reader.is_opened() else None
        if first is None or not reader.rewind():
            reader.close()
            raise VideoReadError(
                f"{path}: not a readable video (empty, truncated or an unknown format)"
            )
        super().__init__(
            reader, name=path.name, loop=loop, realtime=realtime, is_file=True, config=config
        )
