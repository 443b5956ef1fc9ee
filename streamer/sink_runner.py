"""Feeding one sink from its own thread and mailbox, and the timings measured on the way."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamer.errors import SinkUnavailableError
from streamer.frames import Frame, Sink
from streamer.sources import NewestSlot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Percentiles:
    """p50 and p95 of the last `count` samples of one timing, in milliseconds."""

    p50_ms: float
    p95_ms: float
    count: int

    def __str__(self) -> str:
        return f"{self.p50_ms:.1f}/{self.p95_ms:.1f} ms"


class Timings:
    """The last `size` durations of one stage (a bounded sliding window); thread-safe."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def percentiles(self) -> Percentiles | None:
        """p50/p95 over the window, or None before the first sample."""
        with self._lock:
            values = np.array(self._values, np.float64)
        if values.size == 0:
            return None
        p50, p95 = np.percentile(values, [50, 95]) * 1000.0
        return Percentiles(float(p50), float(p95), int(values.size))


class RateMeter:
    """Events per second over the last `horizon_s` seconds; decays to 0 when events stop."""

    def __init__(self, horizon_s: float = 2.0, size: int = 512) -> None:
        self._horizon_s = horizon_s
        self._stamps: deque[float] = deque(maxlen=size)  # bounded: ≤ size/horizon_s events/s
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._stamps.append(now)

    def rate(self, now: float) -> float:
        with self._lock:
            recent = [t for t in self._stamps if t > now - self._horizon_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], recent[-1] - recent[0], 1e-9)


@dataclass(frozen=True)
class SinkStats:
    name: str  # the sink's name
    state: str  # "waiting" (no frame yet), "open", "failed" or "closed"
    delivered: int  # frames handed to sink.send
    dropped: int  # frames replaced in its mailbox before the sink took them
    fps: float  # delivered frames per second over the last 2 s
    send: Percentiles | None  # duration of sink.send
    latency: Percentiles | None  # capture → sink.send returned
    error: str | None  # why the sink failed, when it did

    def line(self) -> str:
        if self.state == "failed":
            return f"{self.name}: failed"  # the reason was logged when it failed
        return (
            f"{self.name}: {self.fps:.1f} fps  latency {self.latency or '-'}  "
            f"send {self.send or '-'}  dropped {self.dropped}"
        )


class SinkRunner:
    """Delivers frames to one sink through a one-slot mailbox, newest wins.

    offer() never blocks: a frame the sink has not taken yet is DROPPED for the newer one, so
    a slow sink loses its own frames and never delays the pipeline or the other sinks. The
    sink is opened on its first frame, at that frame's size. A sink that fails to open
    (SinkUnavailableError) or raises in send() is logged, closed and left out from then on.

    Sinks whose class sets `main_thread = True` (GUI windows: macOS accepts GUI calls only
    from the main thread) get no thread: their owner calls step() from the main thread.
    Between frames step() calls the sink's optional poll() (pumping window events).
    """

    def __init__(
        self,
        sink: Sink,
        fps: float,
        window: int,
        on_failed: Callable[[SinkRunner], None] = lambda runner: None,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.main_thread = bool(getattr(sink, "main_thread", False))
        self._fps = fps
        self._on_failed = on_failed
        self._slot: NewestSlot[Frame] = NewestSlot()
        self._send = Timings(window)
        self._latency = Timings(window)
        self._rate = RateMeter()
        self._delivered = 0
        self._state = "waiting"
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def failed(self) -> bool:
        return self._state == "failed"

    @property
    def delivering(self) -> bool:
        """Opened, and taking frames."""
        return self._state == "open"

    @property
    def delivered(self) -> int:
        """Frames the sink has taken."""
        return self._delivered

    @property
    def error(self) -> str | None:
        return self._error

    def start(self) -> None:
        """Start the delivery thread (not for main-thread sinks: call step() instead)."""
        if self.main_thread or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=f"sink:{self.name}", daemon=True)
        self._thread.start()

    def offer(self, frame: Frame) -> None:
        """Hand over the newest frame; never blocks, drops an unsent older one."""
        self._slot.put(frame)

    def step(self, timeout: float) -> None:
        """Deliver the waiting frame, or wait up to `timeout` s for one (then poll the sink)."""
        frame = self._slot.get(timeout)
        if frame is not None:
            self._deliver(frame)
        elif not self._slot.closed:
            self._poll()

    def close(self) -> None:
        """Stop delivering, join the thread and close the sink; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._slot.close()  # the frame still waiting in it is delivered, then the loop ends
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        else:
            self.step(0.0)
        self._close_sink()
        if self._state != "failed":
            self._state = "closed"

    def stats(self, now: float) -> SinkStats:
        return SinkStats(
            name=self.name,
            state=self._state,
            delivered=self._delivered,
            dropped=self._slot.dropped,
            fps=self._rate.rate(now),
            send=self._send.percentiles(),
            latency=self._latency.percentiles(),
            error=self._error,
        )

    def _loop(self) -> None:
        while not (self._slot.closed and self._slot.empty):
            self.step(timeout=0.05)

    def _deliver(self, frame: Frame) -> None:
        if self._state == "failed":
            return
        try:
            if self._state == "waiting":
                height, width = frame.image.shape[:2]
                self.sink.open(width, height, self._fps)
                self._state = "open"
            start = time.monotonic()
            self.sink.send(frame)
            done = time.monotonic()
        except SinkUnavailableError as exc:
            log.warning("output %s is unavailable: %s", self.name, exc)
            self._fail(str(exc))
            return
        except Exception as exc:
            log.exception("output %s failed", self.name)
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        self._send.add(done - start)
        self._latency.add(done - frame.capture_ts)
        self._rate.tick(done)
        self._delivered += 1

    def _poll(self) -> None:
        poll = getattr(self.sink, "poll", None)
        if poll is not None and self._state == "open":
            poll()

    def _fail(self, message: str) -> None:
        self._state, self._error = "failed", message
        self._slot.close()
        self._close_sink()
        self._on_failed(self)

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            log.exception("closing output %s failed", self.name)
