"""The person's voice to the avatar's viewers, delayed by as long as the video takes to
become the avatar, so the lips and the voice leave together. `headcast serve` relays the
microphone each WHIP sender sends (the serve page's "Voice to viewers" box) to every WHEP
viewer; `stream --voice` relays this machine's, to its WebRTC server's viewers or its WHIP
ingest.

* ``AudioRelay``: one per server (or WHIP output). publish() reads a sender's audio track
  (every sender's, so no receiver queue grows) and hands the newest sender's frames to every
  subscriber.
* ``RelayedAudioTrack``: one per viewer, paced at 20 ms frames of its own. A frame leaves
  once it is as old as the video's delay; until one is due (no sender, a sender without a
  microphone, a gap), silence goes out, so the viewer's audio never stalls. At most
  `max_ready` due frames are kept, and a backlog that stays (frames queued behind a stalled
  loop) loses a frame every `catch_up_ticks`: the newest win and the delay never grows.
  Its pts follow the clock, so frames skipped behind a stall leave a gap in them.
* ``heard_chunks``: a received voice in 20 ms chunks, each stamped when it came as read
  from its pts (``ArrivalClock``), so a stalled loop does not move it later.

The sender's own connection gets no audio back (a person would hear themselves), unless
it asks for it to record (`subscribe(hears=sender)`: that sender's voice alone, delayed the
same, whoever else speaks; `headcast client --record` with `--voice`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from streamer.frames import VOICE_CHUNK, VOICE_RATE
from streamer.timing import ArrivalClock
from streamer.video_io import audio_frame
from streamer.webrtc_tracks import VIDEO_CLOCK_RATE, FrameClock, FrameLatency

if TYPE_CHECKING:
    from streamer.voice import VoiceFeed

logger = logging.getLogger(__name__)

# aiortc's audio receiver lets a packet go only once 4 more are in (its jitter buffer's
# prefetch): a received voice comes 80 ms later than the video sent beside it
RECEIVER_HOLD_S = 4 * VOICE_CHUNK / VOICE_RATE


@dataclass(frozen=True)
class AudioConfig:
    # the video's delay is followed from the median of this many frames' latencies...
    window: int = 50
    # ...and the audio's delay moves to it only when they differ by more than this: each move
    # costs a frame (a gap of silence when it grows, a frame dropped when it shrinks)
    hysteresis_s: float = 0.015
    # added to the processor's latency: a viewer's video track takes the newest avatar frame
    # at its own frame ticks, on average half a frame after it is made (1/60 s at 30 fps)
    extra_delay_s: float = 1.0 / 60.0
    max_ready: int = 3  # due frames a viewer keeps; older ones are dropped (newest wins)
    # more than one frame due at every tick for this long (frames that queued up behind a
    # stalled loop): the oldest is dropped, or the voice would stay that much behind the video
    catch_up_ticks: int = 25
    max_queued: int = 100  # frames (2 s) a viewer holds in all: a stalled viewer drops


class Chunker:
    """Audio frames of any rate, layout and size → 20 ms chunks of 48 kHz stereo: (1, 1920)
    int16, interleaved. Their pts are dropped (the chunks are laid by when they came)."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(
            format="s16", layout="stereo", rate=VOICE_RATE, frame_size=VOICE_CHUNK)

    def split(self, frame: AudioFrame) -> list[np.ndarray]:
        frame.pts = None  # a lost packet leaves a gap in the pts the resampler would fill
        return [chunk.to_ndarray() for chunk in self._resampler.resample(frame)]


def _end_s(frame: AudioFrame) -> float | None:
    """Where an audio frame ends on its own clock (seconds), None where it has no pts."""
    if frame.pts is None or frame.time_base is None or not frame.sample_rate:
        return None
    return float(frame.pts * frame.time_base) + frame.samples / frame.sample_rate


async def heard_chunks(track: MediaStreamTrack) -> AsyncIterator[tuple[np.ndarray, float]]:
    """An audio track's 20 ms chunks as they come → (samples, monotonic time it came, as
    ArrivalClock reads it from the pts), until the track ends (MediaStreamError, which ends
    the iteration)."""
    chunker = Chunker()
    clock = ArrivalClock()
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            arrived = clock.stamp(_end_s(frame), time.monotonic())
            for samples in chunker.split(frame):
                yield samples, arrived


def silence() -> np.ndarray:
    """20 ms of stereo silence: (1, 1920) int16."""
    return np.zeros((1, 2 * VOICE_CHUNK), np.int16)


class RelayedAudioTrack(MediaStreamTrack):
    """A viewer's audio: the relayed frames once due, silence in between; 20 ms frames."""

    kind = "audio"

    def __init__(self, config: AudioConfig, on_stop: Callable[[RelayedAudioTrack], None],
                 hears: str | None = None) -> None:
        super().__init__()
        self.hears = hears  # one sender's voice (its own, back to it); None: the speaker's
        self._config = config
        self._on_stop = on_stop
        self._clock = FrameClock(VOICE_RATE / VOICE_CHUNK)
        # (due, samples); each viewer makes its own AudioFrame, as encoders stamp them
        self._queue: collections.deque[tuple[float, np.ndarray]] = collections.deque(
            maxlen=config.max_queued)
        self._pts = 0
        self._behind = 0  # ticks in a row with more than one frame due
        self.frames_dropped = 0

    def push(self, samples: np.ndarray, due: float) -> None:
        """A relayed frame's samples ((1, 1920) int16), to go out at monotonic time `due`."""
        self._queue.append((due, samples))

    def take(self, now: float) -> np.ndarray | None:
        """The oldest frame due by `now`, or None: silence goes out. Keeps at most
        max_ready due frames (the older ones are dropped), and drops one more after
        catch_up_ticks calls in a row with more than one due, so the delay cannot grow."""
        due = sum(1 for at, _ in self._queue if at <= now)
        drop = max(0, due - self._config.max_ready)
        self._behind = self._behind + 1 if due > 1 else 0
        if self._behind >= self._config.catch_up_ticks:
            self._behind, drop = 0, max(drop, 1)
        for _ in range(drop):
            self._queue.popleft()
            self.frames_dropped += 1
            due -= 1
        if due == 0:
            return None
        return self._queue.popleft()[1]

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        # The pts follow the clock, so the frames skipped behind a stalled loop leave a gap
        # in them: laid end to end, what comes after a stall would be heard as sent before
        # it. The encoder stamps its first packet after a gap as if there were none (its
        # look-ahead holds samples from before), so the frame after a gap goes out silent
        # and what is due waits a frame.
        ticked = round(await self._clock.tick() * VOICE_RATE / VIDEO_CLOCK_RATE)
        gap = ticked - self._pts >= VOICE_CHUNK // 2
        pts = ticked if gap else self._pts
        samples = None if gap else self.take(time.monotonic())
        frame = audio_frame(silence() if samples is None else samples, pts)
        self._pts = pts + frame.samples
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            self._on_stop(self)
        super().stop()


class VoiceDelay:
    """The delay a sender's audio takes: the median latency of its latest video frames, each
    frame counted once however often it is read (the voice reads it every 20 ms: behind a
    stall, one late frame read for the whole burst of voice after it had filled the window
    and held the voice 0.2 s late)."""

    def __init__(self, config: AudioConfig,
                 latency: Callable[[], FrameLatency | None]) -> None:
        self._config = config
        self._latency = latency
        self._samples: collections.deque[float] = collections.deque(maxlen=config.window)
        self._frame: int | None = None
        self.seconds: float | None = None

    def update(self) -> float | None:
        """→ the delay now, None until the sender's video has become the avatar once."""
        reading = self._latency()
        if reading is not None and reading[0] != self._frame:
            self._frame = reading[0]
            self._samples.append(reading[1])
        if not self._samples:
            return None
        target = statistics.median(self._samples) + self._config.extra_delay_s
        if self.seconds is None or abs(target - self.seconds) > self._config.hysteresis_s:
            self.seconds = target
        return self.seconds


class AudioRelay:
    """The newest sender's audio to every viewer's RelayedAudioTrack. Lives on one loop.

    A sender is a remote track (publish: a WHIP session's microphone) or a VoiceFeed
    (follow: this machine's --voice)."""

    def __init__(self, config: AudioConfig = AudioConfig()) -> None:
        self.config = config
        self._viewers: list[RelayedAudioTrack] = []
        # sender → how to stop reading it; in order of arrival: the last one is heard
        self._senders: dict[str, Callable[[], None]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._delays: dict[str, VoiceDelay] = {}

    @property
    def speaker(self) -> str | None:
        """The sender heard now: the newest one still sending."""
        return next(reversed(self._senders), None)

    def delay(self, sender: str) -> float | None:
        """The delay a sender's frames take now (seconds); None for an unknown sender, and
        until its video has become the avatar once (its voice is not relayed until then)."""
        delay = self._delays.get(sender)
        return delay.seconds if delay is not None else None

    def subscribe(self, hears: str | None = None) -> RelayedAudioTrack:
        """A viewer's track: the speaker's voice, or with `hears` that sender's alone."""
        track = RelayedAudioTrack(self.config, self._viewers.remove, hears)
        self._viewers.append(track)
        return track

    def publish(self, sender: str, track: MediaStreamTrack,
                latency: Callable[[], FrameLatency | None]) -> None:
        """Relay `track` (a WHIP session's audio) until it ends or unpublish(sender).
        latency(): the sender's newest video frame's number and how long it took to become
        the avatar (seconds), None before the first."""
        self.unpublish(sender)
        self._delays[sender] = VoiceDelay(self.config, latency)
        task = asyncio.ensure_future(self._pump(sender, track))
        self._tasks[sender] = task
        self._senders[sender] = task.cancel
        logger.info("voice of %s relayed to the viewers", sender)

    def follow(self, sender: str, feed: VoiceFeed,
               latency: Callable[[], FrameLatency | None]) -> None:
        """Relay a VoiceFeed (this machine's --voice) as `sender` until unpublish(sender);
        latency() as for publish(). Call on the relay's loop."""
        self.unpublish(sender)
        loop = asyncio.get_running_loop()
        self._delays[sender] = VoiceDelay(self.config, latency)

        def heard(samples: np.ndarray, arrived: float) -> None:  # on the feed's thread
            with contextlib.suppress(RuntimeError):  # this loop closed: nobody to hand to
                loop.call_soon_threadsafe(self._hand, sender, samples, arrived)

        self._senders[sender] = feed.listen(heard)

    def unpublish(self, sender: str) -> None:
        stop = self._senders.pop(sender, None)
        self._delays.pop(sender, None)
        task = self._tasks.pop(sender, None)
        if stop is not None and task is not asyncio.current_task():
            stop()

    def _hand(self, sender: str, samples: np.ndarray, arrived: float) -> None:
        """20 ms of a sender's voice ((1, 1920) int16), arrived at monotonic time `arrived`:
        due once the sender's video delay has passed, to every viewer when it is the
        speaker, and to the viewers that hear it alone."""
        delay = self._delays.get(sender)
        seconds = delay.update() if delay is not None else None
        if seconds is None:
            return
        speaking = self.speaker == sender
        for viewer in list(self._viewers):
            if viewer.hears == sender or (speaking and viewer.hears is None):
                viewer.push(samples, arrived + seconds)

    async def _pump(self, sender: str, track: MediaStreamTrack) -> None:
        """A remote voice, each 20 ms stamped when it came less RECEIVER_HOLD_S: when it
        would have come had it not waited in aiortc's receiver, beside the video it was
        sent with, whose latency is counted from when it came."""
        try:  # read all the same when not heard: an unread receiver queues forever
            async for samples, arrived in heard_chunks(track):
                self._hand(sender, samples, arrived - RECEIVER_HOLD_S)
            logger.info("voice of %s ended", sender)  # a sender left, its microphone stopped
        finally:
            if self._tasks.get(sender) is asyncio.current_task():
                self.unpublish(sender)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for sender in list(self._senders):
            self.unpublish(sender)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
