"""The record sink: the avatar stream to an mp4 file, in real time at the source's rate, with
the --voice beside it when there is one."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from streamer.errors import OutputFileError, SinkUnavailableError
from streamer.frames import VOICE_CHUNK, VOICE_RATE, Frame
from streamer.output_file import VIDEO_SUFFIXES, check_output
from streamer.sinks import letterbox
from streamer.timing import SlidingMinimum

if TYPE_CHECKING:
    from streamer.voice import Heard

log = logging.getLogger(__name__)

VOICE_ANCHOR_FRAMES = 50  # frames whose capture times place the voice (RecordSink)


@dataclass(frozen=True)
class RecordConfig:
    path: str  # the .mp4 file to write; replaced if it exists
    fps: float | None = None  # frame rate of the file; None: the source's
    crf: int = 18  # H.264 quality: lower is better and bigger


class _Writer(Protocol):
    """Encodes (H, W, 3) uint8 BGR frames of one size into a file."""

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """time: the second at which the frame shows, after the last one's (None: 1/fps
        after it); the last frame shows until then."""
        ...

    def close(self) -> None:
        """Flush and finish the file; safe to call more than once."""
        ...


def _h264_writer(path: Path, size: tuple[int, int], fps: float, crf: int,
                 voice: bool = False) -> _Writer:
    import av

    from streamer.video_io import VideoWriter

    if "libx264" not in av.codecs_available:
        raise RuntimeError("this PyAV build has no libx264")
    return VideoWriter(path, fps, crf=crf, voice=voice, bframes=False, live=True)


class _OpenCVWriter:
    """cv2.VideoWriter with the mp4v codec: the fallback where libx264 is missing (no sound).
    Its frames have a fixed rate: a frame's time is kept by repeating the one before."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, crf: int,
                 voice: bool = False) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise RuntimeError("cv2.VideoWriter could not open it with mp4v")
        self._fps = fps
        self._written = 0
        self._last: np.ndarray | None = None

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        if time is not None and self._last is not None:
            while self._written < round(time * self._fps):
                self._put(self._last)
        self._put(image)

    def _put(self, image: np.ndarray) -> None:
        self._writer.write(image)
        self._written += 1
        self._last = image

    def close(self) -> None:
        self._writer.release()


# Tried in order: the first that opens writes the file. (path, size, fps, crf, voice)
WRITERS: list[Callable[[Path, tuple[int, int], float, int, bool], _Writer]] = [
    _h264_writer,
    _OpenCVWriter,
]


class VoiceTape:
    """Lays a voice's 20 ms chunks (a VoiceFeed's, or one come back from a server) into a
    recording at the moments they were heard, counted from `start_ts` (when the recording's
    first instant was captured, which its owner may correct as frames come): the voice of
    one moment beside the avatar frame of that moment. The chunks are laid end to end; where
    they fall behind their moment by more than `slack` chunks (the microphone paused),
    silence fills the gap, and a chunk more than `slack` ahead of it (the microphone's clock
    runs fast) is dropped. Thread-safe on the listening side (the feed's thread); take() and
    start_ts on one thread."""

    def __init__(self, feed: Heard, start_ts: float, slack: int = 3) -> None:
        self.start_ts = start_ts
        self._slack = slack * VOICE_CHUNK
        self._heard: queue.SimpleQueue[tuple[np.ndarray, float]] = queue.SimpleQueue()
        self._next: int | None = None  # the sample the next chunk starts at
        self._remove = feed.listen(lambda samples, arrived: self._heard.put((samples, arrived)))

    def take(self, until: int | None = None) -> list[tuple[np.ndarray, int]]:
        """The chunks heard since the last take → [(samples (1, 1920) int16, first sample)],
        in order; with `until`, none that starts at or after that sample."""
        out: list[tuple[np.ndarray, int]] = []
        while True:
            try:
                samples, arrived = self._heard.get_nowait()
            except queue.Empty:
                return out
            at = round((arrived - self.start_ts) * VOICE_RATE) - VOICE_CHUNK  # its start
            if self._next is None:
                if at < 0:
                    continue  # heard before the first frame
                self._next = at
            if self._next - at > self._slack:
                continue  # ahead of its moment: dropped
            if at - self._next > self._slack:
                while at - self._next >= VOICE_CHUNK:
                    if until is None or self._next < until:
                        out.append((np.zeros_like(samples), self._next))
                    self._next += VOICE_CHUNK
            if until is None or self._next < until:
                out.append((samples, self._next))
            self._next += VOICE_CHUNK

    def silence(self, until: int) -> list[tuple[np.ndarray, int]]:
        """Silent chunks from where the voice stopped (or the file's start, where none was
        heard) up to `until`, as take() gives chunks: a sound file that ended, or a
        microphone that went quiet for good, leaves the file's sound as long as its picture."""
        start = 0 if self._next is None else self._next
        chunks = [(np.zeros((1, 2 * VOICE_CHUNK), np.int16), at)
                  for at in range(start, until, VOICE_CHUNK)]
        self._next = max(start, until)
        return chunks

    def close(self) -> None:
        self._remove()


class RecordSink:
    """Writes every frame it gets to an mp4, each at its source index's time at the
    source's frame rate.

    Where the pipeline skipped frames (their source index jumped), the frame before shows
    until the next one's time, so the file plays in real time. (The skipped frames had been
    filled by encoding the last one again, runs of at most 2 s: on a loaded machine the
    encoding made the sink fall further behind, its gaps grew past 2 s, and 616 s of `stream`
    gave 322 s of file.) Frames of another size than the first (a portrait switch) are
    letterboxed into it.

    The voice is laid by when it was heard, from when the file's first instant was captured:
    each frame's capture time less its place in the file, the least of the last
    VOICE_ANCHOR_FRAMES. A frame that came late (as an avatar frame coming back from a
    server may) moves nothing; laid from the first frame's time alone, the voice was as
    early as that frame had been late.
    """

    name = "record"

    def __init__(self, config: RecordConfig, voice: Heard | None = None) -> None:
        self._config = config
        self._voice = voice  # --voice: recorded beside the avatar, by capture time
        self._tape: VoiceTape | None = None
        self._writer: _Writer | None = None
        self._fps = 0.0
        self._size = (0, 0)  # (w, h) the file was opened at
        self._first_index: int | None = None  # the first frame's source index: the file's 0
        self._end = 0.0  # seconds: the end of the last frame written
        self._start = SlidingMinimum(VOICE_ANCHOR_FRAMES)  # → the tape's start_ts
        self.frames_written = 0
        self._broken = False  # the file could not be written on: close() only lets it go

    def open(self, width: int, height: int, fps: float) -> None:
        path = Path(self._config.path)
        try:
            check_output(path, VIDEO_SUFFIXES)
        except OutputFileError as exc:
            raise SinkUnavailableError(f"cannot record: {exc}") from None
        self._fps = self._config.fps or fps
        self._size = (width, height)
        errors = []
        voice = self._voice is not None
        for make in WRITERS:
            try:
                self._writer = make(path, (width, height), self._fps, self._config.crf, voice)
                break
            except Exception as exc:
                errors.append(f"{getattr(make, '__name__', make)}: {exc}")
        else:
            raise SinkUnavailableError(f"cannot record to {path}: {'; '.join(errors)}")
        if voice and not hasattr(self._writer, "write_voice"):
            log.warning("recording %s without the voice: this PyAV has no libx264", path)
            self._voice = None

    def send(self, frame: Frame) -> None:
        if self._writer is None:
            raise RuntimeError("RecordSink.send before open")
        if self._first_index is None:
            self._first_index = frame.index
        # its place in the file: its index's time, and never before the last frame's end
        place = max((frame.index - self._first_index) / self._fps, self._end)
        if self._voice is not None:
            start_ts = self._start.push(frame.capture_ts - place)
            if self._tape is None:
                self._tape = VoiceTape(self._voice, start_ts)
            self._tape.start_ts = start_ts
        try:
            self._write(frame.image, place)
            self._end = place + 1.0 / self._fps
            self._write_voice()
        except OutputFileError as exc:  # a full disk, a drive pulled out
            self._broken = True
            raise SinkUnavailableError(
                f"the recording stopped {self._end:.1f} s in ({exc}); the file plays up to "
                "a second or two before that") from None

    def close(self) -> None:
        if self._tape is not None:
            self._tape.close()
            if not self._broken:
                # what was heard up to the last frame's end, silence after it
                end = round(self._end * VOICE_RATE)
                self._write_voice(end)
                if self._writer is not None:
                    for samples, at in self._tape.silence(end):
                        self._writer.write_voice(samples, at)  # type: ignore[attr-defined]
            self._tape = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _write_voice(self, until: int | None = None) -> None:
        if self._tape is None or self._writer is None:
            return
        for samples, at in self._tape.take(until):
            self._writer.write_voice(samples, at)  # type: ignore[attr-defined]

    def _write(self, image: np.ndarray, place: float) -> None:
        assert self._writer is not None
        if (image.shape[1], image.shape[0]) != self._size:  # another portrait, another size
            image = letterbox(image, self._size)
        self._writer.write(image, place)
        self.frames_written += 1
