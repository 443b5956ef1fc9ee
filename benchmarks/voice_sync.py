"""Voice and avatar in step: how far apart `headcast serve` sends a viewer a sender's sound and
the avatar frame of the same moment.

A Python WHIP sender's camera and microphone switch on together every `period` seconds: the
picture turns bright and a hum starts, both for half a period. The server's processor passes
the picture through after `render_ms` (a renderer that slow). On the server's tracks for one
WHEP viewer, the time each bright frame and each hum goes to the encoder is taken: the skew is
hum − bright (positive: the voice is late). "Undelayed" is when the hum reached the relay,
against the same bright frame: what the viewer would get if the voice were sent as it came.

From there the viewer's player keeps the two in step: the answer puts them in one stream
(one msid), the grouping by which WebRTC players line up audio and video by the sender's
clocks (RTCP sender reports). benchmarks/voice_sync_browser.py measures it there, in
Chromium.

Run from the project root: python -m benchmarks.voice_sync [--events 8] [--render-ms 0 40 100 200]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from benchmarks.quality import at_least
from benchmarks.webrtc_latency import PassThroughFactory
from streamer.frames import VOICE_CHUNK, VOICE_RATE, Frame
from streamer.video_io import audio_frame
from streamer.webrtc_tracks import FrameClock, FrameSlot

FPS = 25.0
BRIGHT, DARK = 230, 30


def on_at(t: float, start: float, period: float) -> bool:
    """Whether the camera and the microphone are on at monotonic time t (events every
    `period` s from `start`, each half a period long)."""
    return t >= start and (t - start) % period < period / 2


class ToneTrack(MediaStreamTrack):
    """A microphone that hums a sine of `hz` in 20 ms frames, paced in real time, while
    on(now) holds (always, by default), silent otherwise; `sounding_since`: when the first
    hum was sent."""

    kind = "audio"

    def __init__(self, hz: float, level: float = 0.3,
                 on: Callable[[float], bool] = lambda now: True) -> None:
        super().__init__()
        self.hz = hz
        self.level = level
        self._on = on
        self.sounding_since: float | None = None
        self._clock = FrameClock(VOICE_RATE / VOICE_CHUNK)
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._clock.tick()
        now = time.monotonic()
        level = self.level if self._on(now) else 0.0
        if level and self.sounding_since is None:
            self.sounding_since = now
        t = (self._pts + np.arange(VOICE_CHUNK)) / VOICE_RATE
        mono = (level * 32767 * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)
        frame = audio_frame(np.repeat(mono, 2)[None], self._pts)
        self._pts += VOICE_CHUNK
        return frame


class Flashes:
    """Puts frames into a slot every 10 ms: bright while on(now), dark otherwise."""

    def __init__(self, slot: FrameSlot, on: Callable[[float], bool]) -> None:
        self._slot = slot
        self._on = on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flashes", daemon=True)

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(0.01):
            now = time.monotonic()
            value = BRIGHT if self._on(now) else DARK
            self._slot.put(Frame(np.full((96, 128, 3), value, np.uint8), now, index))
            index += 1

    def __enter__(self) -> Flashes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def is_bright(frame: object) -> bool:
    return float(frame.to_ndarray(format="gray")[20:].mean()) > (BRIGHT + DARK) / 2  # type: ignore[attr-defined]


def is_loud(frame: object) -> bool:
    return int(np.abs(frame.to_ndarray()).max()) > 300  # type: ignore[attr-defined]


def watch_onsets(track: MediaStreamTrack, loud: Callable[[object], bool]) -> list[float]:
    """Wraps a server track's recv(): → a list that gets the time of every frame handed to
    the encoder for which loud(frame) holds and did not for the frame before."""
    onsets: list[float] = []
    recv = track.recv
    was = [False]

    async def watched():  # type: ignore[no-untyped-def]
        frame = await recv()
        now = loud(frame)
        if now and not was[0]:
            onsets.append(time.monotonic())
        was[0] = now
        return frame

    track.recv = watched  # type: ignore[method-assign]
    return onsets


def pair(first: Sequence[float], second: Sequence[float], within: float) -> list[float]:
    """second − first for each onset of `first` with one of `second` within `within` s."""
    out = []
    for t in first:
        near = [s - t for s in second if abs(s - t) <= within]
        if near:
            out.append(min(near, key=abs))
    return out


def measure(render_s: float, events: int, period: float) -> dict[str, object]:
    """One server, one sender, one viewer: → skews (s) and the voice's delay."""
    from streamer.webrtc_client import EndpointConfig, WebRTCSession
    from streamer.webrtc_server import ServerConfig, ServerThread
    from streamer.webrtc_tracks import AvatarTrack

    server = ServerThread(ServerConfig(port=0), processors=PassThroughFactory(render_s))
    server.start()
    slot = FrameSlot()
    start = time.monotonic() + 3.0  # connected and the delay known by then

    def on(t: float) -> bool:
        return on_at(t, start, period)

    relay = server.server.audio
    assert relay is not None
    arrived: list[float] = []  # hum onsets as they reach the relay

    async def run() -> tuple[list[float], list[float], float | None]:
        viewer = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whep"), None, True, receive_audio=True)
        (session,) = server.server.sessions.values()
        video, audio = session.tracks
        bright = watch_onsets(video, is_bright)
        hum = watch_onsets(audio, is_loud)
        push = audio.push  # type: ignore[attr-defined]
        was = [False]

        def watched_push(samples: np.ndarray, due: float) -> None:
            loud = int(np.abs(samples).max()) > 300
            if loud and not was[0]:
                arrived.append(time.monotonic())
            was[0] = loud
            push(samples, due)

        audio.push = watched_push  # type: ignore[attr-defined]
        sender = await WebRTCSession.open(
            EndpointConfig(f"{server.url}/whip"), AvatarTrack(slot, FPS, (128, 96)), True,
            send_audio=ToneTrack(440, on=on))
        try:
            await asyncio.sleep(start - time.monotonic() + events * period)
            speaker = relay.speaker
            return bright, hum, relay.delay(speaker) if speaker else None
        finally:
            await sender.close()
            await viewer.close()

    try:
        with Flashes(slot, on):
            bright, hum, delay = asyncio.run(run())
    finally:
        server.close()
    within = period / 4
    return {"skew": pair(bright, hum, within), "undelayed": pair(bright, arrived, within),
            "delay": delay}


def table(rows: Sequence[tuple[float, dict[str, object]]]) -> str:
    lines = [
        "| render | voice delay | skew p50 | skew max abs | undelayed p50 | events |",
        "|---|---|---|---|---|---|",
    ]
    for render_s, row in rows:
        skew = np.asarray(row["skew"]) * 1000
        undelayed = np.asarray(row["undelayed"]) * 1000
        delay = row["delay"]
        lines.append(
            f"| {render_s * 1000:.0f} ms | "
            + (f"{delay * 1000:.0f} ms" if isinstance(delay, float) else "—")
            + (f" | {np.median(skew):+.0f} ms | {np.abs(skew).max():.0f} ms" if len(skew)
               else " | — | —")
            + (f" | {np.median(undelayed):+.0f} ms" if len(undelayed) else " | —")
            + f" | {len(skew)} |"
        )
    return "\n".join(lines)


def event_options(parser: argparse.ArgumentParser, render_ms: Sequence[float]) -> None:
    """--events, --period and --render-ms, for this benchmark and its browser twin."""
    parser.add_argument("--events", type=at_least(1), default=8,
                        help="flash + hum events per row")
    parser.add_argument("--period", type=at_least(0.2, float), default=1.0,
                        help="seconds between events")
    parser.add_argument("--render-ms", type=at_least(0, float), nargs="+",
                        default=list(render_ms),
                        help="how long the processor takes a frame, one row each")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.voice_sync",
                                     description=__doc__.split("\n\n")[0])
    event_options(parser, [0, 40, 100, 200])
    args = parser.parse_args(argv)
    rows = [(ms / 1000, measure(ms / 1000, args.events, args.period)) for ms in args.render_ms]
    print("Voice vs avatar at the server's output to a viewer (skew = hum − bright frame;"
          " positive: the voice is late)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
