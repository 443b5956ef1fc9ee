"""Errors a user can cause. Each message says what to do about it."""

from __future__ import annotations


class HeadcastError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class ImageReadError(HeadcastError):
    """An image file is missing, unreadable or not an image."""


class VideoReadError(HeadcastError):
    """A video file is missing, empty, truncated or not a video."""


class NoFaceError(HeadcastError):
    """No human face was found where one is required (e.g. in a portrait)."""


class FaceChoiceError(HeadcastError):
    """Which face to animate is unclear: a picture shows several of about one size, or the
    face asked for (--face N) is not in it."""


class FaceTooSmallError(HeadcastError):
    """A face was found but is too small to animate well."""


class PortraitFileError(HeadcastError):
    """A .headcast file is corrupt, of another version, or not a portrait file."""


class ModelFileError(HeadcastError):
    """A shipped model file is missing or does not match its manifest."""


class DeviceUnavailableError(HeadcastError):
    """The device asked for (--device cuda or tensorrt) is not in the onnxruntime in use."""


class SinkUnavailableError(HeadcastError):
    """An output (virtual camera, port, window) cannot be opened."""


class SourceLostError(HeadcastError):
    """A camera or stream stopped delivering frames."""


class PortInUseError(SinkUnavailableError):
    """The TCP port a server should listen on is taken by another program."""


class InsecureBindError(HeadcastError):
    """Listening beyond this machine without a token would let anyone use the avatar."""


class SignallingError(HeadcastError):
    """A WHIP/WHEP server could not be reached or refused the session."""


class VoiceUnavailableError(HeadcastError):
    """The microphone or sound file given as --voice cannot be opened."""


class OutputFileError(HeadcastError):
    """A result cannot be written where asked: no such folder, not writable, a folder, a kind
    of file headcast does not write, or one of the command's own inputs."""


def reason(exc: BaseException) -> str:
    """An exception from a library, for a message: its text, or its type where it has none
    (aiortc's bare AssertionError, a timeout's empty text)."""
    return str(exc) or type(exc).__name__


def not_a_file(path: object) -> str:
    """What is wrong with an input path that is not a file: '<path>: no such file',
    '<path>: a folder, not a file' (an input given as a folder was told 'no such file'), or
    '<path>: not a file' (a device, a pipe: /dev/null was told 'no such file')."""
    from pathlib import Path

    there = Path(str(path))
    if there.is_dir():
        return f"{path}: a folder, not a file"
    return f"{path}: not a file" if there.exists() else f"{path}: no such file"
