"""aiortc media tracks: the newest avatar frame at a fixed rate, and a live frame transformer.

Two ways frames cross into WebRTC:

* ``FrameSlot`` + ``AvatarTrack``: a producer thread (the pipeline, a capture thread) puts
  frames into one slot; every viewer's track reads the newest frame itself at a fixed rate,
  so a slow viewer never slows the producer or the other viewers.
* ``ProcessedTrack``: wraps a remote (browser/client) video track, runs a FrameProcessor on
  it in a worker thread and emits the results. Incoming frames that arrive while the worker
  is busy are dropped (the newest wins), so latency never grows with time. A staged
  processor (the Animator) runs its two halves on two threads, as `stream` does: frame n + 1
  is tracked while frame n is rendered.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from streamer.frames import LIVE_MAX_SIDE, Frame, FrameProcessor, StagedProcessor
from streamer.sinks import shrink_to
from streamer.timing import ArrivalClock

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000  # RTP video clock (RFC 3551): pts count 1/90000 s
# (the newest video frame's number, how long it took to become the avatar, seconds): what a
# sender's latency() says (FrameSlot.latency; the voice's delay follows it), None before its
# first frame
FrameLatency = tuple[int, float]
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

T = TypeVar("T")


class FrameSlot:
    """Thread-safe holder of the newest frame: one item; put() replaces (drops) the old one.

    Never blocks either side. `version` counts puts, so readers can tell new from repeated.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._version = 0
        self._latency: float | None = None

    def put(self, frame: Frame) -> None:
        with self._lock:
            self._frame = frame
            self._version += 1
            self._latency = time.monotonic() - frame.capture_ts

    def latency(self) -> FrameLatency | None:
        """(version, capture → put in seconds) of the newest frame; None before the first."""
        with self._lock:
            return None if self._latency is None else (self._version, self._latency)

    def get(self) -> tuple[Frame | None, int]:
        """→ (newest frame or None before the first put, version)."""
        with self._lock:
            return self._frame, self._version


class FrameClock:
    """Paces a track at `fps` and stamps pts in the 90 kHz RTP clock.

    pts follow wall time since the first frame, so a late loop skips frames instead of
    sending a burst to catch up (which would grow latency at the receiver).
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.interval = 1.0 / fps
        self._start: float | None = None
        self._next = 0.0
        self._last_pts = -1

    async def tick(self) -> int:
        """Sleep until the next frame is due → its pts (strictly increasing)."""
        now = time.monotonic()
        if self._start is None:
            self._start = self._next = now
        else:
            self._next += self.interval
            await asyncio.sleep(max(0.0, self._next - now))
            # fell behind by more than a frame, or woke that late (a stalled loop): skip
            now = time.monotonic()
            if self._next < now - self.interval:
                self._next = now
        pts = int(round((self._next - self._start) * VIDEO_CLOCK_RATE))
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        return pts


def to_video_frame(image: np.ndarray, max_side: int | None = None) -> VideoFrame:
    """image: (H, W, 3) uint8 BGR → av VideoFrame (even width/height, as VP8/H.264 need),
    shrunk to max_side on its longer side when given and larger."""
    if max_side is not None:
        image = shrink_to(image, max_side)
    h, w = image.shape[:2]
    image = np.ascontiguousarray(image[: h - h % 2, : w - w % 2])
    return VideoFrame.from_ndarray(image, format="bgr24")


class AvatarTrack(MediaStreamTrack):
    """Video track that sends the newest frame of a FrameSlot at a fixed rate.

    Before the first frame arrives it sends black frames of `placeholder_size` (w, h), so
    the connection starts at once. One track per viewer; each reads the slot itself.
    """

    kind = "video"

    def __init__(
        self, slot: FrameSlot, fps: float, placeholder_size: tuple[int, int] = (320, 240)
    ) -> None:
        super().__init__()
        self._slot = slot
        self._clock = FrameClock(fps)
        w, h = placeholder_size
        self._black = np.zeros((h - h % 2, w - w % 2, 3), np.uint8)
        self.frames_sent = 0
        self.last_frame: Frame | None = None  # the Frame behind the latest recv()

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.tick()
        frame, _ = self._slot.get()
        self.last_frame = frame
        video_frame = to_video_frame(self._black if frame is None else frame.image,
                                     LIVE_MAX_SIDE)
        video_frame.pts = pts
        video_frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return video_frame


class LatestWorker(Generic[T]):
    """Reads a video track as fast as it delivers and runs `work` on the newest frame.

    work(frame, received_ts, index) runs in `executor` (received_ts: when the frame came, as
    an ArrivalClock reads it from its pts); frames that arrive while it runs wait in a
    one-item slot that drops when full, so only the newest is worked on next.
    With `finish` (and `finish_executor`, one thread), work is the first half of a frame:
    finish(work's result) runs on the other thread while the next frame's work runs, one
    frame in each half at most, results in order. on_result(result) is called on the loop.
    start() once the loop runs; stop() and wait() end it; `done` resolves when the track
    ended or stop() was called. exclusive() runs a call when no frame is between halves.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        work: Callable[[VideoFrame, float, int], Any],
        executor: Executor | None,
        on_result: Callable[[T], None] | None = None,
        finish: Callable[[Any], T] | None = None,
        finish_executor: Executor | None = None,
    ) -> None:
        self._track = track
        self._work_fn = work
        self._executor = executor
        self._on_result = on_result
        self._finish_fn = finish
        self._finish_executor = finish_executor
        self._finishing: asyncio.Future[None] | None = None  # the frame in its second half
        self._turn = asyncio.Lock()  # held by a frame's first half, and by exclusive()
        self._pending: tuple[VideoFrame, float] | None = None  # newest input, not yet taken
        self._input_ready = asyncio.Event()
        self._source_ended = False
        self._tasks: list[asyncio.Task[None]] = []
        self._done: asyncio.Future[None] | None = None
        self.frames_in = 0
        self.frames_dropped = 0
        self.frames_done = 0
        self.error: Exception | None = None  # what `work` or `finish` raised, ending the worker

    def start(self) -> None:
        if self._tasks:
            return
        self._done = asyncio.get_running_loop().create_future()
        self._tasks = [asyncio.ensure_future(self._pump()), asyncio.ensure_future(self._run())]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._finish()

    async def wait(self) -> None:
        """Until the track ends (or stop()); re-raises what `work` raised, if anything."""
        if self._done is not None:
            await asyncio.shield(self._done)
        if self.error is not None:
            raise self.error

    async def exclusive(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on the first half's executor, once no frame is between the halves (a
        staged processor may only be switched then)."""
        async with self._turn:
            await self._drain()
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def _pump(self) -> None:
        clock = ArrivalClock()  # received_ts: when a frame came, as its pts say
        try:
            while True:
                frame = await self._track.recv()
                self.frames_in += 1
                if self._pending is not None:
                    self.frames_dropped += 1
                own = None if frame.pts is None or frame.time_base is None else float(
                    frame.pts * frame.time_base)
                self._pending = (frame, clock.stamp(own, time.monotonic()))
                self._input_ready.set()
        except MediaStreamError:
            pass
        finally:
            self._source_ended = True
            self._input_ready.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        index = 0
        try:
            while True:
                await self._input_ready.wait()
                self._input_ready.clear()
                if self._pending is None:
                    if self._source_ended:
                        break
                    continue
                (frame, received_ts), self._pending = self._pending, None
                async with self._turn:
                    result = await loop.run_in_executor(
                        self._executor, self._work_fn, frame, received_ts, index
                    )
                    index += 1
                    if self._finish_fn is None:
                        self._deliver(result)
                    else:
                        await self._drain()  # the previous frame leaves its second half
                        self._finishing = asyncio.ensure_future(self._second_half(result))
            await self._drain()
        except Exception as exc:
            logger.debug("frame worker failed; stopping", exc_info=True)
            self.error = exc
        finally:
            if self._finishing is not None:
                self._finishing.cancel()
            self._finish()

    async def _second_half(self, begun: Any) -> None:
        assert self._finish_fn is not None
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._finish_executor, self._finish_fn, begun)
        except Exception as exc:  # ends the worker now, not at the next frame
            logger.debug("frame worker failed; stopping", exc_info=True)
            self.error = exc
            self.stop()
            return
        self._deliver(result)

    async def _drain(self) -> None:
        """Until the frame in its second half (if any) is delivered (or failed)."""
        if self._finishing is not None:
            await asyncio.wait([self._finishing])
            self._finishing = None

    def _deliver(self, result: T) -> None:
        self.frames_done += 1
        if self._on_result is not None:
            self._on_result(result)


class ProcessedTrack(MediaStreamTrack):
    """Runs `processor` on a remote video track in a worker thread and emits the results.

    `executor` must run one job at a time (the processor is not thread-safe): pass a
    ThreadPoolExecutor(max_workers=1) per session. With `finish_executor` (another one) a
    StagedProcessor runs prepare() on the first and finish() on the second, overlapping
    consecutive frames; switch it only through control(). Incoming frames received while the
    worker is busy are dropped but the newest (LatestWorker), and a result nobody has read
    yet is replaced by the next one. `on_result` (called on the loop) gets every avatar
    Frame too, e.g. to publish it into a FrameSlot for WHEP viewers. The worker runs
    whether or not anyone reads this track; call start() once the loop runs.
    """

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        processor: FrameProcessor,
        executor: Executor,
        on_result: Callable[[Frame], None] | None = None,
        finish_executor: Executor | None = None,
    ) -> None:
        super().__init__()
        self._processor = processor
        self._staged = isinstance(processor, StagedProcessor)
        self._on_result = on_result
        if finish_executor is not None and self._staged:
            self._worker: LatestWorker[tuple[VideoFrame, Frame]] = LatestWorker(
                source, self._prepare, executor, self._publish, self._finish_frame,
                finish_executor)
        else:
            self._worker = LatestWorker(source, self._process, executor, self._publish)
        self._result: VideoFrame | None = None
        self._result_ready = asyncio.Event()
        self.last_latency_s = 0.0  # receive → processed, for the newest result
        self.last_interval_s = 0.0  # between the two newest results
        self._last_published: float | None = None

    @property
    def worker(self) -> LatestWorker[tuple[VideoFrame, Frame]]:
        return self._worker

    def start(self) -> None:
        self._worker.start()
        asyncio.ensure_future(self._end_with_worker())

    async def control(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) (e.g. processor.set_portrait) on the processor's thread, between frames."""
        return await self._worker.exclusive(fn, *args)

    async def recv(self) -> VideoFrame:
        while self._result is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._result_ready.clear()
            await self._result_ready.wait()
        frame, self._result = self._result, None
        return frame

    def stop(self) -> None:
        self._worker.stop()
        self._result_ready.set()  # wake a pending recv() so it sees the end
        super().stop()

    async def _end_with_worker(self) -> None:
        try:
            await self._worker.wait()
        except Exception:
            logger.exception("frame processor failed; ending the processed track")
        self.stop()

    def _process(
        self, incoming: VideoFrame, received_ts: float, index: int
    ) -> tuple[VideoFrame, Frame]:
        """Worker thread: decode → process → encode-ready frame (keeps the input's pts)."""
        return self._finish_frame(self._prepare(incoming, received_ts, index))

    def _prepare(self, incoming: VideoFrame, received_ts: float, index: int) -> _Begun:
        """First half: decode, and a staged processor's prepare() (tracking)."""
        image = incoming.to_ndarray(format="bgr24")
        work = self._processor.prepare(image) if self._staged else image  # type: ignore[attr-defined]
        return _Begun(incoming.pts, incoming.time_base, received_ts, index, work)

    def _finish_frame(self, begun: _Begun) -> tuple[VideoFrame, Frame]:
        """Second half: finish() (or process()) → encode-ready frame (keeps the input's pts)."""
        if self._staged:
            image = self._processor.finish(begun.work)  # type: ignore[attr-defined]
        else:
            image = self._processor.process(begun.work)
        avatar = Frame(image, begun.received_ts, begun.index)
        out = to_video_frame(avatar.image, LIVE_MAX_SIDE)
        if begun.pts is None or begun.time_base is None:
            out.pts, out.time_base = int(begun.received_ts * VIDEO_CLOCK_RATE), VIDEO_TIME_BASE
        else:
            out.pts, out.time_base = begun.pts, begun.time_base
        return out, avatar

    def _publish(self, result: tuple[VideoFrame, Frame]) -> None:
        out, avatar = result
        now = time.monotonic()
        self.last_latency_s = now - avatar.capture_ts
        if self._last_published is not None:
            self.last_interval_s = now - self._last_published
        self._last_published = now
        self._result = out
        self._result_ready.set()
        if self._on_result is not None:
            self._on_result(avatar)


@dataclass(frozen=True)
class _Begun:
    """A received frame after the first half: its timing and what the second half takes."""

    pts: int | None
    time_base: fractions.Fraction | None
    received_ts: float
    index: int
    work: Any  # the prepared frame (staged) or the decoded image


class LoopThread:
    """An asyncio loop in a daemon thread, for callers that are not async (sinks, tests).

    run() submits a coroutine with run_coroutine_threadsafe and waits for its result.
    close() stops the loop and joins the thread; safe to call more than once.
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop → its result; raises what it raises (TimeoutError too)."""
        if self._closed:
            coro.close()
            raise RuntimeError("LoopThread is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
