"""The live loop: source → processor (one or two worker threads) → every sink (a thread each).

    capture thread ──NewestSlot──▶ worker: processor.process ──NewestSlot per sink──▶ sinks

A processor that splits its frame in two halves (streamer.frames.StagedProcessor: tracking
and the warp, then the neural generator and paste-back) gets two workers, so one frame is
prepared while the previous one is finished and both cores work:

    capture ──NewestSlot──▶ prepare worker ──Handoff──▶ finish worker ──NewestSlot──▶ sinks

Every hand-over to and from the workers is a one-slot mailbox that drops the older frame, so
latency cannot grow with time, and a slow sink drops its own frames without slowing the
others. The prepare worker takes a new camera frame only once the finish worker has taken the
last one it prepared, so at most two frames are in flight. Frames keep their capture
timestamp to the sink, so capture→sink latency is measured per sink.

A portrait switch is made ready (processor.make_avatar: most of a second for the Animator)
on a thread of its own while the frames go on, and swapped in between two of them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from streamer.errors import HeadcastError, SinkUnavailableError
from streamer.frames import Frame, FrameProcessor, Sink, StagedProcessor
from streamer.sink_runner import Percentiles, RateMeter, SinkRunner, SinkStats, Timings
from streamer.sources import PacedReader, Source

if TYPE_CHECKING:
    from streamer.portrait import Portrait

log = logging.getLogger(__name__)


class AvatarProcessor(FrameProcessor, Protocol):
    """A FrameProcessor that can switch portrait and head-pose transfer between frames
    (streamer.animate.Animator is one). Like process(), called from one thread only."""

    def set_pose_transfer(self, enabled: bool) -> None:
        """Transfer head rotation (True) or only expressions (False) from the next frame on."""
        ...

    def make_avatar(self, portrait: Portrait) -> object:
        """`portrait` made ready for set_portrait: the slow part of a switch, called from
        another thread while frames go on."""
        ...

    def set_portrait(self, portrait: object) -> None:
        """Animate a portrait (as make_avatar made it ready) from the next frame on."""
        ...


@dataclass(frozen=True)
class PipelineConfig:
    mirror: bool = False  # flip driving frames left-right first (selfie view: move as in a mirror)
    head_pose: bool = True  # transfer head rotation, not only expressions, from the start
    stats_window: int = 300  # samples kept per timing for p50/p95 (~10 s at 30 fps); bounded
    poll_interval_s: float = 0.05  # how long idle threads wait before looking at the stop flag
    overlap: bool = True  # run a StagedProcessor's halves on two threads (else one worker)


@dataclass(frozen=True)
class PipelineStats:
    offered: int  # frames the source captured up to the newest one the worker took
    processed: int  # frames the processor turned into avatar frames
    fps: float  # processed frames per second over the last 2 s
    wait: Percentiles | None  # capture → processing starts (time in the capture mailbox)
    process: Percentiles | None  # processor.process
    sinks: tuple[SinkStats, ...]  # one per sink, in the order they were added

    def lines(self) -> list[str]:
        """Human-readable lines, for the preview overlay or the terminal."""
        skipped = self.offered - self.processed
        return [
            f"processed {self.fps:.1f} fps  skipped {skipped}/{self.offered}",
            f"wait {self.wait or '-'}  process {self.process or '-'}",
            *(sink.line() for sink in self.sinks),
        ]


_FROZEN = object()  # handed to the finish worker instead of a prepared frame while frozen


class Handoff:
    """One prepared frame between the prepare and the finish worker.

    The prepare worker waits for the slot to be empty before it takes the next camera frame
    (wait_empty), then put()s; the finish worker take()s and calls done() when it has
    finished. wait_idle() returns once no frame is in the slot or being finished."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[Frame, float, object] | None = None
        self._busy = False

    def wait_empty(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._item is None, timeout)

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._item is None and not self._busy, timeout)

    def put(self, item: tuple[Frame, float, object]) -> None:
        with self._cond:
            assert self._item is None, "wait_empty() before put()"
            self._item = item
            self._cond.notify_all()

    def take(self, timeout: float) -> tuple[Frame, float, object] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None, timeout):
                return None
            item, self._item, self._busy = self._item, None, True
            self._cond.notify_all()
            return item

    def done(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


class Pipeline:
    """Drives a source through a processor to sinks; the controls are thread-safe methods.

    The pipeline owns the source, the processor and the sinks it is given: close() closes
    them all. Every sink gets the same avatar array: sinks must not draw on it in place.
    start() starts the threads; run() also drives main-thread sinks (the preview window)
    from the calling thread, so call run() from the main thread when there is one.
    """

    def __init__(
        self,
        source: Source,
        processor: AvatarProcessor,
        sinks: Sequence[Sink] = (),
        config: PipelineConfig = PipelineConfig(),
        portraits: Sequence[Portrait] = (),
    ) -> None:
        self._source = source
        self._processor = processor
        self._config = config
        self._portraits = list(portraits)
        self._runners: list[SinkRunner] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._finisher: threading.Thread | None = None
        self._handoff: Handoff | None = None
        self._closed = False
        # Controls: mirror/freeze are read by the worker; the rest wait for it in _pending.
        self._mirror = config.mirror
        self._frozen = False
        self._head_pose = config.head_pose
        self._portrait_index = 0
        self._asked = 0  # portrait selections so far: a later one makes an earlier moot
        self._avatars = ThreadPoolExecutor(1, thread_name_prefix="pipeline-avatar")
        self._pending: dict[str, object] = {"head_pose": config.head_pose}
        # Measurements.
        self._wait = Timings(config.stats_window)
        self._process = Timings(config.stats_window)
        self._rate = RateMeter()
        self._processed = 0
        self._offered = 0
        self._last_output: np.ndarray | None = None
        self._reader = PacedReader(source)  # black frames while the camera is away
        for sink in sinks:
            self.add_sink(sink)

    # --- lifecycle ---------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """Send output to `sink` too. Only before start()."""
        if self._worker is not None:
            raise RuntimeError("add sinks before the pipeline starts")
        runner = SinkRunner(sink, self._source.fps, self._config.stats_window, self._sink_failed)
        self._runners.append(runner)

    def start(self) -> None:
        """Start the worker and the sink threads; returns at once. Safe to call twice."""
        if self._worker is not None:
            return
        for runner in self._runners:
            runner.start()
        if self._config.overlap and isinstance(self._processor, StagedProcessor):
            self._handoff = Handoff()
            self._finisher = threading.Thread(
                target=self._finish_work, name="pipeline-finish", daemon=True
            )
            self._finisher.start()
        self._worker = threading.Thread(target=self._work, name="pipeline-worker", daemon=True)
        self._worker.start()

    def run(
        self,
        duration: float | None = None,
        report: Callable[[PipelineStats], None] | None = None,
        report_every_s: float = 1.0,
    ) -> None:
        """Start, then block until stop(), the end of the source or `duration` seconds.

        Drives main-thread sinks meanwhile and calls `report(stats())` every report_every_s.
        Raises the error that ended the pipeline (SourceLostError, SinkUnavailableError when
        no sink could be opened, or whatever the processor raised).
        """
        self.start()
        now = time.monotonic()
        end = now + duration if duration is not None else math.inf
        next_report = now + report_every_s
        while not self._stop.is_set() and now < end:
            timeout = min(self._config.poll_interval_s, max(end - now, 0.0))
            main = [r for r in self._runners if r.main_thread and not r.failed]
            if main:
                for runner in main:
                    runner.step(timeout / len(main))
            else:
                self._stop.wait(timeout)
            now = time.monotonic()
            if report is not None and now >= next_report:
                report(self.stats())
                next_report = now + report_every_s
        self.stop()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Ask every thread to finish (the quit control); returns at once."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._stop.is_set()

    @property
    def error(self) -> BaseException | None:
        """What ended the pipeline, if it failed."""
        return self._error

    def close(self) -> None:
        """Stop, join the threads, close sinks, source and processor. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        for thread in (self._worker, self._finisher):
            if thread is not None:
                thread.join(timeout=10.0)
        self._avatars.shutdown(wait=True, cancel_futures=True)
        for runner in self._runners:
            runner.close()
        self._source.close()
        self._processor.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- controls (any thread) -----------------------------------------------------------

    def recalibrate(self) -> None:
        """Take the neutral reference again from the next steady frames."""
        self._request("recalibrate", True)

    def select_portrait(self, index: int) -> bool:
        """Animate portraits[index] (0-based) from the next frame on; False if out of range."""
        if not 0 <= index < len(self._portraits):
            log.info("no portrait %d (have %d)", index + 1, len(self._portraits))
            return False
        self._portrait_index = index
        with self._lock:
            self._asked += 1
            asked = self._asked
        self._avatars.submit(self._make_avatar, index, asked)
        return True

    def set_head_pose(self, enabled: bool) -> None:
        """Transfer head rotation (True) or only expressions (False)."""
        self._head_pose = enabled
        self._request("head_pose", enabled)

    def toggle_head_pose(self) -> bool:
        self.set_head_pose(not self._head_pose)
        return self._head_pose

    def set_mirror(self, enabled: bool) -> None:
        """Flip driving frames left-right before processing."""
        self._mirror = enabled

    def toggle_mirror(self) -> bool:
        self._mirror = not self._mirror
        return self._mirror

    def set_frozen(self, frozen: bool) -> None:
        """Keep sending the last avatar frame (fresh timestamps) instead of new ones."""
        self._frozen = frozen

    def toggle_freeze(self) -> bool:
        self._frozen = not self._frozen
        return self._frozen

    @property
    def head_pose(self) -> bool:
        return self._head_pose

    @property
    def mirror(self) -> bool:
        return self._mirror

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def portrait_index(self) -> int:
        return self._portrait_index

    def status_lines(self) -> list[str]:
        """What the person in front of the camera should know now, for the preview window:
        the camera gone, no face in view, the resting face being taken; none while the avatar
        follows the face."""
        if self._source.waiting:
            return [f"{self._source.name} stopped: reopening it"]
        status = self._processor.status()
        return [status] if status else []

    def stats(self) -> PipelineStats:
        """A snapshot of the counters and of p50/p95 timings over the sliding window."""
        now = time.monotonic()
        return PipelineStats(
            offered=self._offered,
            processed=self._processed,
            fps=self._rate.rate(now),
            wait=self._wait.percentiles(),
            process=self._process.percentiles(),
            sinks=tuple(runner.stats(now) for runner in self._runners),
        )

    # --- worker thread -----------------------------------------------------------------

    def _request(self, name: str, value: object) -> None:
        """Leave a control for the worker: the processor is only touched from its thread.
        One slot per control, so repeated key presses collapse into the newest."""
        with self._lock:
            self._pending[name] = value

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if "portrait" in pending:
            self._wait_finished()  # the finish worker renders with the current portrait
            self._processor.set_portrait(pending["portrait"])  # type: ignore[arg-type]
        if "head_pose" in pending:
            self._processor.set_pose_transfer(bool(pending["head_pose"]))
        if "recalibrate" in pending:
            self._processor.recalibrate()

    def _make_avatar(self, index: int, asked: int) -> None:
        """(the avatar thread) portraits[index] made ready, then left for the worker to set;
        skipped once a later selection came, and kept from the worker if one came meanwhile.
        A portrait that cannot be made ready leaves the avatar as it was."""
        if asked != self._asked or self._stop.is_set():
            return
        try:
            avatar = self._processor.make_avatar(self._portraits[index])
        except Exception as exc:  # the stream goes on with the avatar it has
            log.error("portrait %d could not be shown: %s", index + 1, exc,
                      exc_info=not isinstance(exc, HeadcastError))
            return
        with self._lock:
            if asked == self._asked:
                self._pending["portrait"] = avatar

    def _wait_finished(self) -> None:
        while self._handoff is not None and not self._stop.is_set():
            if self._handoff.wait_idle(self._config.poll_interval_s):
                return

    def _work(self) -> None:
        """The (prepare) worker: camera frames → processed, or prepared for the finisher."""
        handoff = self._handoff
        try:
            while not self._stop.is_set():
                if handoff is not None and not handoff.wait_empty(self._config.poll_interval_s):
                    continue
                frame = self._reader.read(self._config.poll_interval_s, self._offered)
                if frame is None:
                    continue
                start = time.monotonic()
                self._apply_pending()
                frozen = self._frozen and self._last_output is not None
                driving = cv2.flip(frame.image, 1) if self._mirror else frame.image
                if handoff is not None:
                    assert isinstance(self._processor, StagedProcessor)
                    prepared = _FROZEN if frozen else self._processor.prepare(driving)
                    handoff.put((frame, start, prepared))
                else:
                    image = self._last_output if frozen else self._processor.process(driving)
                    assert image is not None
                    self._deliver(frame, start, image)
        except EOFError as exc:
            log.info("%s", exc)
            self._wait_finished()
        except BaseException as exc:  # handed to run() / error
            self._fail(exc)
        finally:
            self._stop.set()

    def _finish_work(self) -> None:
        """The finish worker: prepared frames → avatar frames → sinks."""
        assert self._handoff is not None and isinstance(self._processor, StagedProcessor)
        try:
            while not self._stop.is_set():
                item = self._handoff.take(self._config.poll_interval_s)
                if item is None:
                    continue
                frame, start, prepared = item
                try:
                    if prepared is _FROZEN:
                        image = self._last_output
                    else:
                        image = self._processor.finish(prepared)
                    assert image is not None
                    self._deliver(frame, start, image)
                finally:
                    self._handoff.done()
        except BaseException as exc:
            self._fail(exc)
            self._stop.set()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        log.error("pipeline stopped: %s", exc)

    def _deliver(self, frame: Frame, start: float, image: np.ndarray) -> None:
        """Count one avatar frame (capture → start waited, start → now processed) and offer it
        to every sink."""
        self._last_output = image
        done = time.monotonic()
        self._wait.add(start - frame.capture_ts)
        self._process.add(done - start)
        self._rate.tick(done)
        self._processed += 1
        self._offered = frame.index + 1
        face = getattr(self._processor, "face_centre", None)  # an Animator knows it
        result = Frame(image, frame.capture_ts, frame.index, face)
        for runner in self._runners:
            runner.offer(result)

    def _sink_failed(self, runner: SinkRunner) -> None:
        # said here, not by the runner: with no output left the stream stops (one still
        # opening may fail too, so only those taking frames are named)
        going = [r.name for r in self._runners if r.delivering]
        if going:
            log.warning("going on without %s, with %s", runner.name, ", ".join(going))
        if self._runners and all(r.failed for r in self._runners):
            reasons = "; ".join(f"{r.name}: {r.error}" for r in self._runners)
            if self._error is None:
                # a recording whose disk filled had been an output; one that never opened not
                went = any(r.delivered for r in self._runners)
                self._error = SinkUnavailableError(
                    f"{'every output has stopped' if went else 'no output could be opened'}. "
                    f"{reasons}")
            self.stop()
