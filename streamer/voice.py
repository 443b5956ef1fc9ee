"""A microphone (or a sound file) as an aiortc audio track: `--voice` on `client` and `stream`.

    --voice default              this machine's default microphone (PulseAudio or ALSA on
                                 Linux, the first AVFoundation device on macOS)
    --voice FORMAT:DEVICE        an FFmpeg capture device: alsa:hw:1, pulse:default,
                                 avfoundation::0, dshow:audio=Microphone (Realtek Audio)
    --voice FILE                 a sound (or video) file's first audio track, in real time

The track is aiortc's MediaPlayer reading through PyAV; which devices exist depends on the
FFmpeg in PyAV's wheel (`python -c "import av; print(av.formats_available)"`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.errors import VoiceUnavailableError

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack

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
    """An opened --voice: `track` is its audio (20 ms-ish frames, as the device gives them).
    close() stops it; safe to call more than once."""

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


def open_voice(spec: str) -> Voice:
    """--voice's value → an opened Voice. Raises VoiceUnavailableError."""
    return Voice(parse_voice(spec))
