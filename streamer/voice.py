"""A microphone (or a sound file): `--voice` on `client` and `stream`.

    --voice default              this machine's default microphone (PulseAudio or ALSA on
                                 Linux, the first AVFoundation device on macOS)
    --voice FORMAT:DEVICE        an FFmpeg capture device: alsa:hw:1, pulse:default,
                                 avfoundation::0, dshow:audio=Microphone (Realtek Audio)
    --voice FILE                 a sound (or video) file's first audio track, in real time

aiortc's MediaPlayer reads it through PyAV; which devices exist depends on the FFmpeg in
PyAV's wheel (`python -c "import av; print(av.formats_available)"`). A VoiceFeed reads it on
its own thread and hands every 20 ms to each output that carries sound (the WebRTC server's
viewers, a WHIP ingest, a recording), so one microphone serves them all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from streamer.errors import VoiceUnavailableError

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack

logger = logging.getLogger(__name__)

# a listener of a VoiceFeed: (samples: (1, 1920) int16, 20 ms stereo at 48 kHz, interleaved;
# arrived: time.monotonic() when they came); called on the feed's thread, must not block
VoiceListener = Callable[[np.ndarray, float], None]


class Heard(Protocol):
    """A voice outputs can listen to: this machine's (VoiceFeed) or one come back from a
    server (VoiceListeners fed by `headcast client`)."""

    def listen(self, listener: VoiceListener) -> Callable[[], None]:
        """Add a listener → a function that removes it."""
        ...


class VoiceListeners:
    """Who hears a voice: listen() adds a VoiceListener, hand() gives each one 20 ms.
    Thread-safe; a listener that raises is logged and the others still hear."""

    def __init__(self) -> None:
        self._listeners: list[VoiceListener] = []
        self._lock = threading.Lock()

    def listen(self, listener: VoiceListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def hand(self, samples: np.ndarray, arrived: float) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(samples, arrived)
            except Exception:  # one output's trouble is not the others'
                logger.exception("a voice listener failed")


CAPTURE_FORMATS = ("alsa", "pulse", "avfoundation", "dshow", "oss", "jack", "openal")


@dataclass(frozen=True)
class VoiceSpec:
    device: str  # the device name for FFmpeg, or a file path
    format: str | None  # the FFmpeg input format (a capture device); None: a file


def parse_voice(spec: str, platform: str = sys.platform,
                formats: frozenset[str] | None = None) -> VoiceSpec:
    """--voice's value → what to open. Raises VoiceUnavailableError for a capture format
    that PyAV's FFmpeg lacks, a missing file, or `default` where there is no default."""
    available = formats if formats is not None else _formats_available()
    if spec == "default":
        return _default_microphone(platform, available)
    name, sep, device = spec.partition(":")
    if sep and name in CAPTURE_FORMATS:
        if name not in available:
            raise VoiceUnavailableError(
                f"--voice {spec}: this PyAV's FFmpeg cannot capture from {name!r} (it has "
                f"{', '.join(sorted(f for f in CAPTURE_FORMATS if f in available)) or 'none'}): "
                "pass another device or a sound file")
        return VoiceSpec(device or "default", name)
    if not Path(spec).is_file():
        raise VoiceUnavailableError(
            f"--voice {spec}: no such file, and not FORMAT:DEVICE of "
            f"{', '.join(CAPTURE_FORMATS)}: pass 'default' for the microphone")
    return VoiceSpec(spec, None)


def _default_microphone(platform: str, available: frozenset[str]) -> VoiceSpec:
    if platform == "darwin" and "avfoundation" in available:
        return VoiceSpec(":0", "avfoundation")  # no video, the first audio device
    if platform.startswith("linux"):
        for name in ("pulse", "alsa"):
            if name in available:
                return VoiceSpec("default", name)
    raise VoiceUnavailableError(
        "--voice default: no default microphone here; name one as FORMAT:DEVICE, e.g. "
        "dshow:audio=NAME on Windows (`ffmpeg -list_devices true -f dshow -i dummy` lists them)")


def _formats_available() -> frozenset[str]:
    import av

    return frozenset(av.formats_available)


class Voice:
    """An opened --voice: `track` is its audio, as aiortc's MediaPlayer gives it (48 kHz
    stereo). close() stops it; safe to call more than once; call it on the loop that reads
    the track (the player's thread hands frames to that loop)."""

    def __init__(self, spec: VoiceSpec) -> None:
        import av
        from aiortc.contrib.media import MediaPlayer

        self.spec = spec
        try:
            self._player = MediaPlayer(spec.device, format=spec.format)
        except (av.FFmpegError, OSError) as exc:
            what = f"{spec.format}:{spec.device}" if spec.format else spec.device
            raise VoiceUnavailableError(
                f"cannot open --voice {what} ({exc}): check the device is plugged in and "
                "allowed, or pass a sound file") from exc
        track = self._player.audio
        if track is None:
            raise VoiceUnavailableError(f"--voice {spec.device} has no audio track")
        self.track: MediaStreamTrack = track
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.track.stop()


class VoiceFeed:
    """An opened --voice, read on its own loop thread: a microphone from the moment it
    opens, a sound file from when the first listener comes (a recording's first frame, a
    connection), so it is heard from its start: read from its opening, a 3 s file had left
    0.7–2.2 s of itself in a recording, the rest played while the stream started. Every
    listener gets each 20 ms of it (VoiceListener). A microphone that stops (unplugged,
    taken by another program) is reopened every `reopen_s` until it is back, the listeners
    hearing nothing meanwhile; a sound file that ends sets `ended`. close() stops it and the
    thread; safe to call more than once. Raises VoiceUnavailableError when the voice cannot
    be opened at first. `opener` opens a VoiceSpec (tests pass fakes)."""

    def __init__(self, spec: VoiceSpec, opener: Callable[[VoiceSpec], Voice] = Voice,
                 reopen_s: float = 1.0) -> None:
        from streamer.webrtc_tracks import LoopThread

        self.spec = spec
        self._opener = opener
        self._reopen_s = reopen_s
        self._heard = VoiceListeners()
        self._thread = LoopThread("headcast-voice")
        try:
            self._voice: Voice | None = opener(spec)
        except BaseException:
            self._thread.close()
            raise
        self.ended = threading.Event()  # a sound file's end (a microphone is waited for)
        self.reopened = 0  # times a stopped microphone came back
        self.muted = False  # listeners get silence (the stream's `v` key), its timing kept
        self._closed = False
        self._task: concurrent.futures.Future[None] | None = None
        self._starting = threading.Lock()
        if spec.format is not None:  # a microphone: heard as it comes
            self._start()

    def _start(self) -> None:
        with self._starting:
            if self._task is None and not self._closed:
                self._task = asyncio.run_coroutine_threadsafe(self._read(), self._thread.loop)

    def toggle_mute(self) -> bool:
        """Mute or unmute → True when the voice is on now."""
        self.muted = not self.muted
        return not self.muted

    def listen(self, listener: VoiceListener) -> Callable[[], None]:
        """Add a listener → a function that removes it. The first starts a sound file."""
        remove = self._heard.listen(listener)
        self._start()
        return remove

    async def _read(self) -> None:
        voice = self._voice
        try:
            while voice is not None and not self._closed:
                await self._hand_out(voice)
                voice.close()
                self._voice = None
                if self._closed:
                    break
                if self.spec.format is None:  # a file: played to its end
                    logger.info("the voice (%s) ended: outputs carry silence from here",
                                self.spec.device)
                    break
                logger.warning("the microphone (%s:%s) stopped: reopening it every %.0f s; "
                               "outputs carry silence meanwhile", self.spec.format,
                               self.spec.device, self._reopen_s)
                voice = self._voice = await self._reopen()
        finally:
            self.ended.set()

    async def _hand_out(self, voice: Voice) -> None:
        """Every 20 ms of `voice` to every listener, until it stops."""
        from streamer.webrtc_audio import heard_chunks

        async for samples, arrived in heard_chunks(voice.track):
            self._heard.hand(np.zeros_like(samples) if self.muted else samples, arrived)

    async def _reopen(self) -> Voice | None:
        """The microphone again, once it opens; None when closed first."""
        while not self._closed:
            await asyncio.sleep(self._reopen_s)
            try:
                voice = self._opener(self.spec)
            except VoiceUnavailableError:
                continue
            self.reopened += 1
            logger.warning("the microphone (%s:%s) is back", self.spec.format, self.spec.device)
            return voice
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def stop() -> None:
            if self._voice is not None:
                self._voice.close()  # on its loop: the player's thread hands frames to it

        with contextlib.suppress(Exception):
            self._thread.run(stop(), timeout=5)
        with self._starting:
            if self._task is not None:
                self._task.cancel()
        self._thread.close()


def open_voice_feed(spec: str) -> VoiceFeed:
    """--voice's value → a VoiceFeed, reading. Raises VoiceUnavailableError."""
    return VoiceFeed(parse_voice(spec))
