"""The record sink: the avatar stream to an mp4 file, in real time at the source's rate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from streamer.errors import SinkUnavailableError
from streamer.frames import Frame
from streamer.sinks import letterbox


@dataclass(frozen=True)
class RecordConfig:
    path: str  # the .mp4 file to write; replaced if it exists
    fps: float | None = None  # frame rate of the file; None: the source's
    crf: int = 18  # H.264 quality: lower is better and bigger
    max_fill_s: float = 2.0  # longest run of missed frames filled by repeating the last one


class _Writer(Protocol):
    """Encodes (H, W, 3) uint8 BGR frames of one size into a file."""

    def write(self, image: np.ndarray) -> None: ...

    def close(self) -> None:
        """Flush and finish the file; safe to call more than once."""
        ...


def _h264_writer(path: Path, size: tuple[int, int], fps: float, crf: int) -> _Writer:
    import av

    from streamer.video_io import VideoWriter

    if "libx264" not in av.codecs_available:
        raise RuntimeError("this PyAV build has no libx264")
    return VideoWriter(path, fps, crf=crf)


class _OpenCVWriter:
    """cv2.VideoWriter with the mp4v codec: the fallback where libx264 is missing."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, crf: int) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise RuntimeError("cv2.VideoWriter could not open it with mp4v")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()


# Tried in order: the first that opens writes the file.
WRITERS: list[Callable[[Path, tuple[int, int], float, int], _Writer]] = [
    _h264_writer,
    _OpenCVWriter,
]


class RecordSink:
    """Writes every frame it gets to an mp4 at the source's frame rate.

    Frames the pipeline skipped (their source index jumped) are filled by repeating the last
    frame, so the file plays in real time; runs longer than config.max_fill_s are cut short.
    Frames of another size than the first (a portrait switch) are letterboxed into it.
    """

    name = "record"

    def __init__(self, config: RecordConfig) -> None:
        self._config = config
        self._writer: _Writer | None = None
        self._fps = 0.0
        self._size = (0, 0)  # (w, h) the file was opened at
        self._last: Frame | None = None
        self.frames_written = 0

    def open(self, width: int, height: int, fps: float) -> None:
        path = Path(self._config.path)
        if not path.parent.is_dir():
            raise SinkUnavailableError(f"cannot record to {path}: folder {path.parent} is missing")
        self._fps = self._config.fps or fps
        self._size = (width, height)
        errors = []
        for make in WRITERS:
            try:
                self._writer = make(path, (width, height), self._fps, self._config.crf)
                return
            except Exception as exc:
                errors.append(f"{getattr(make, '__name__', make)}: {exc}")
        raise SinkUnavailableError(f"cannot record to {path}: {'; '.join(errors)}")

    def send(self, frame: Frame) -> None:
        if self._writer is None:
            raise RuntimeError("RecordSink.send before open")
        if self._last is not None:
            missed = frame.index - self._last.index - 1
            for _ in range(min(missed, int(self._config.max_fill_s * self._fps))):
                self._write(self._last.image)
        self._write(frame.image)
        self._last = frame

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _write(self, image: np.ndarray) -> None:
        assert self._writer is not None
        if (image.shape[1], image.shape[0]) != self._size:  # another portrait, another size
            image = letterbox(image, self._size)
        self._writer.write(image)
        self.frames_written += 1
