"""Reading images and videos, and writing videos that keep the driving clip's audio."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from streamer.errors import ImageReadError, OutputFileError, VideoReadError, not_a_file
from streamer.frames import VOICE_RATE
from streamer.output_file import VIDEO_SUFFIXES, unwritable

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

# The driving clip's sound is copied as it is into an output that takes it and that common
# players play from it; any other sound is re-encoded, to AAC (MP3 in .avi). Copied as it
# was, PCM (a camera's or an .avi's) made an .mp4 that could not be finished, and Opus or
# FLAC (WebM, .mkv) an .mov that could not be begun, MP3 an .m4v: after the whole clip
# was rendered.
_SOUND_KEPT = {
    ".mp4": {"aac", "mp3"}, ".m4v": {"aac"}, ".mov": {"aac", "mp3", "pcm_s16le"},
    ".mkv": {"aac", "mp3", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "pcm_s16le"},
    ".avi": {"mp3", "ac3", "pcm_s16le"},
}
_SOUND_ENCODER = {".avi": "libmp3lame"}
_TICK = Fraction(1, 90_000)  # the written frames' time unit (MPEG's clock)
# A live recording in these is written in fragments of a second, each flushed to disk, so a
# process killed while it records (SIGKILL, a power cut) leaves a file that plays up to its
# last second; a plain MP4 has its index written at close, and without it no player opens
# it. Matroska holds a cluster in memory until it ends (5 s, or 5 MB); AVI is written as it
# goes.
_FRAGMENTED = {
    ".mp4": {"movflags": "frag_keyframe+empty_moov+default_base_moof",
             "frag_duration": "1000000"},
    ".mkv": {"cluster_time_limit": "1000"},
}
_FRAGMENTED[".m4v"] = _FRAGMENTED[".mov"] = _FRAGMENTED[".mp4"]


# A picture larger than this is refused before it is decoded: a 200-megapixel phone photo is
# taken; a 2.7 MB PNG saying 30000 x 30000 took 74 s and 8 GB to decode here.
MAX_READ_PIXELS = 250_000_000


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file → (H, W, 3) uint8 BGR. Raises ImageReadError."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(not_a_file(path))
    data = np.fromfile(path, np.uint8)
    size = declared_size(data)
    if size is not None and size[0] * size[1] > MAX_READ_PIXELS:  # said before decoding it
        raise ImageReadError(
            f"{path} is {size[0]}x{size[1]}, {size[0] * size[1] / 1e6:.0f} megapixels: take "
            f"a picture of at most {MAX_READ_PIXELS // 1_000_000} (a portrait is used at "
            "1280 pixels live, at its full size by `animate`)")
    image = decode_image(data)
    if image is None:
        video = path.suffix.lower() in (*VIDEO_SUFFIXES, ".webm")  # .webm: read, not written
        hint = (": to take a portrait's shots from a clip, `headcast enroll --from-video "
                f"{path} -o NAME.headcast`") if video else ""
        raise ImageReadError(
            f"{path}: not a readable image (JPEG, PNG, WebP, BMP or TIFF expected){hint}"
        )
    return image


# Formats whose files can carry an alpha channel (PNG, WebP, TIFF), by their first bytes.
_ALPHA_MAGIC = (b"\x89PNG", b"RIFF", b"II*\x00", b"MM\x00*")


# The eight ways an EXIF orientation turns a picture (quarter turns, each also mirrored).
_UPRIGHT_TURNS = [
    (lambda a, k=k, flip=flip: np.rot90(a[:, ::-1] if flip else a, k))
    for flip in (False, True) for k in range(4)
]


def decode_image(data: np.ndarray) -> np.ndarray | None:
    """Encoded image bytes (uint8) → (H, W, 3) uint8 BGR, turned upright where its EXIF
    says; None when they are not an image. A picture with an alpha channel (a cut-out
    portrait) is laid over white, as viewers show it: under its transparent pixels a file
    holds whatever the program that cut it left there (black, the old background, noise),
    and OpenCV's colour decode drops the alpha and shows that."""
    if not data.size:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or not data[:4].tobytes().startswith(_ALPHA_MAGIC):
        return image
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] != 4:
        return image
    top = 1.0 if raw.dtype.kind == "f" else float(np.iinfo(raw.dtype).max)
    alpha = np.clip(raw[..., 3:].astype(np.float32) / top, 0.0, 1.0)
    as_stored = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    turned = next((turn for turn in _UPRIGHT_TURNS
                   if np.array_equal(turn(as_stored), image)), None)
    if turned is None:  # cannot happen unless OpenCV turns pictures some other way
        log.warning("a picture's alpha channel is not applied: its EXIF turn is unknown")
        return image
    alpha = turned(alpha)  # as the colour was turned upright by its EXIF
    over = image.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.rint(over).astype(np.uint8)


# The formats decode_image is asked for, by their Pillow names.
_DECLARING = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")


def declared_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) that an encoded picture's header gives, read without decoding it (a
    2.7 MB PNG can say 30000 x 30000: 2.7 GB once decoded), as stored (before any EXIF
    turn); None where it is none of JPEG, PNG, WebP, BMP or TIFF or its header is unreadable.
    Through Pillow's format readers themselves: Image.open would refuse a picture past its
    own limit before saying its size."""
    from PIL import Image

    Image.init()
    for name in _DECLARING:
        factory, accept = Image.OPEN.get(name, (None, None))
        if factory is None or (accept is not None and not accept(bytes(data[:16]))):
            continue
        try:
            with factory(io.BytesIO(data), None) as image:
                width, height = image.size
        except Exception:  # noqa: BLE001 - whatever a broken header makes a reader raise
            continue
        return int(width), int(height)
    return None


def video_info(path: str | Path) -> tuple[float, int | None]:
    """(frames per second, frame count or None when the header does not say) of a video's
    first video stream. Raises VideoReadError."""
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return float(rate), (int(stream.frames) or None)


def video_fps(path: str | Path) -> float:
    """Frames per second of a video's first video stream. Raises VideoReadError."""
    return video_info(path)[0]


def read_video_frames(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video → (H, W, 3) uint8 BGR frames, turned upright where the file says how
    to show them (a phone's display matrix). Raises VideoReadError when the file is not a
    video, has no video stream or no decodable frame; a truncated tail ends the clip."""
    return (image for image, _ in read_timed_frames(path, max_frames))


def read_timed_frames(path: str | Path, max_frames: int | None = None
                      ) -> Iterator[tuple[np.ndarray, float | None]]:
    """read_video_frames, each frame with the second at which it shows (None where the file
    does not say): a phone's clip changes its frame rate as the light does."""
    import av

    count = 0
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield upright(frame.to_ndarray(format="bgr24"), frame.rotation), frame.time
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            if count == 0:
                raise VideoReadError(f"{path}: cannot decode video ({exc})") from exc
            return  # truncated file: keep what decoded
    if count == 0:
        raise VideoReadError(f"{path}: the video has no frames")


# a display matrix's quarter turns (counter-clockwise) → cv2.rotate's codes
_QUARTER_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame as it is meant to be shown: `rotation` is the display matrix's turn in
    degrees (PyAV's VideoFrame.rotation; counter-clockwise, as OpenCV's auto-orientation
    turns it). Phones store portrait video as landscape frames with such a turn: read as
    stored, the face lies on its side, and a head turning left reads as nodding."""
    quarters = round(rotation / 90.0) % 4
    # cv2.rotate gives np.rot90's pixels 5-8× sooner (a 1080p frame in 2-5 ms, not 19-33)
    return cv2.rotate(image, _QUARTER_TURNS[quarters]) if quarters else image


def _open_input(path: str | Path):  # type: ignore[no-untyped-def]
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoReadError(not_a_file(path))
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoReadError(f"{path}: not a readable video ({exc})") from exc


def is_still_picture(path: str | Path) -> bool:
    """Whether FFmpeg reads the file as one picture (a JPEG, a PNG...: its image demuxers),
    not as a clip; an animated GIF is a clip. Raises VideoReadError where it reads neither."""
    with _open_input(path) as container:
        name = container.format.name
        return name == "image2" or name.endswith("_pipe")


def _video_stream(container, path: str | Path):  # type: ignore[no-untyped-def]
    if not container.streams.video:
        raise VideoReadError(f"{path}: no video stream in this file")
    return container.streams.video[0]


def audio_frame(samples: np.ndarray, pts: int | None = None) -> av.AudioFrame:
    """samples: (1, 2 × n) int16, stereo interleaved → a 48 kHz AudioFrame (the voice's
    format, frames.VOICE_RATE), stamped `pts` samples in when given."""
    import av

    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
    frame.sample_rate = VOICE_RATE
    if pts is not None:
        frame.pts, frame.time_base = pts, Fraction(1, VOICE_RATE)
    return frame


class VideoWriter:
    """H.264 writer (the container by the path's suffix); puts the audio track of
    `audio_from` (if it has one) into the file, copied where the container takes it
    (_SOUND_KEPT), else re-encoded; or with `voice`, encodes the sound given to
    write_voice() as AAC.

    Frames: (H, W, 3) uint8 BGR, all the same size. Use as a context manager; close() muxes
    the audio and is safe to call more than once. A file that cannot be written on (a full
    disk, a drive gone) raises OutputFileError naming `shown_as` (default: path), from
    write() or close(); close() after that closes what is open and raises nothing more.
    """

    def __init__(
        self, path: str | Path, fps: float, audio_from: str | Path | None = None, crf: int = 18,
        voice: bool = False, bframes: bool = True, live: bool = False,
        shown_as: str | Path | None = None,
    ) -> None:
        """bframes: False for frames of uneven times (a live recording's, held over skipped
        frames): x264's B-frames make each frame's decode time that of a frame before, and
        the file's length ended at the decode times (frames at 0, 0.1, 0.5 and 10.5 s made a
        file of 0.7 s). live: a recording that may be cut off: every packet flushed to disk,
        an MP4 in fragments of a second (_FRAGMENTED)."""
        import av

        self._path = Path(path)
        self._shown_as = Path(shown_as) if shown_as is not None else self._path
        self._failed = False  # a write failed: close() only lets go of the file
        self._fps = Fraction(fps).limit_denominator(1001)
        self._audio_from = audio_from
        self._crf = crf
        self._bframes = bframes
        options = ({**_FRAGMENTED.get(self._path.suffix.lower(), {}), "flush_packets": "1"}
                   if live else None)
        self._container = av.open(str(self._path), mode="w", options=options)
        self._stream = None
        self._audio_in = None
        self._audio_out = None
        self._reencode = False  # the audio is decoded and encoded again, not copied
        self._voice = None
        if voice:
            self._voice = self._container.add_stream("aac", rate=VOICE_RATE)
            self._voice.layout = "stereo"
        self.frames_written = 0
        self._frame_ticks = round(1 / (self._fps * _TICK))  # a frame's time at fps
        self._last_pts: int | None = None  # the last frame's, in _TICKs
        self._closed = False
        self._add_audio()

    def _add_audio(self) -> None:
        import av

        if self._audio_from is None:
            return
        try:
            source = av.open(str(self._audio_from))
        except av.error.FFmpegError:
            return
        if not source.streams.audio:
            source.close()
            return
        self._audio_in = source
        sound = source.streams.audio[0]
        suffix = self._path.suffix.lower()
        if sound.codec_context.codec.canonical_name in _SOUND_KEPT.get(suffix, {"aac"}):
            self._audio_out = self._container.add_stream_from_template(sound)
            return
        self._reencode = True
        self._audio_out = self._container.add_stream(_SOUND_ENCODER.get(suffix, "aac"),
                                                     rate=VOICE_RATE)
        self._audio_out.layout = "stereo"
        log.info("%s: its %s sound is re-encoded to %s for %s", self._audio_from,
                 sound.codec_context.codec.canonical_name, self._audio_out.codec_context.name,
                 self._path)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """time: the second at which the frame shows (a driving frame's own, so a clip of
        changing frame rate keeps its timing and its sound in step); None: 1/fps after the
        last one."""
        import av

        if self._stream is None:
            h, w = image.shape[:2]
            self._stream = self._container.add_stream("libx264", rate=self._fps)
            self._stream.width, self._stream.height = w - w % 2, h - h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self._crf), "preset": "veryfast",
                                    **({} if self._bframes else {"bf": "0"})}
            self._stream.codec_context.time_base = _TICK
        h, w = self._stream.height, self._stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        last = self._last_pts
        if time is None:
            pts = 0 if last is None else last + self._frame_ticks
        else:  # from 0 and in order, whatever the file said
            pts = max(round(time / _TICK), 0 if last is None else last + 1)
        frame.pts, frame.time_base = pts, _TICK
        self._last_pts = pts
        self._mux(self._stream.encode(frame))
        self.frames_written += 1

    @property
    def end_time(self) -> Fraction:
        """Seconds from the file's start to the end of the last frame written."""
        return Fraction(0) if self._last_pts is None else (
            (self._last_pts + self._frame_ticks) * _TICK)

    def write_voice(self, samples: np.ndarray, pts: int) -> None:
        """samples: (1, 2 × n) int16, stereo at 48 kHz, interleaved, starting `pts` samples
        into the file (after the first frame: the file's header is written with it)."""
        if self._voice is None or self._stream is None:
            raise RuntimeError("write_voice needs voice=True and a frame written first")
        self._mux(self._voice.encode(audio_frame(samples, pts)))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._stream is not None and not self._failed:
                self._mux(self._stream.encode())
                if self._voice is not None:
                    self._mux(self._voice.encode())
                self._mux_audio()
        finally:
            try:
                self._container.close()
            except OSError as exc:
                if not self._failed:
                    self._failed = True
                    raise unwritable(self._shown_as, exc) from None
            finally:
                if self._audio_in is not None:
                    self._audio_in.close()

    def _mux(self, packets: Iterable[av.Packet]) -> None:
        if self._failed:
            raise OutputFileError(f"cannot write {self._shown_as}: an earlier write failed")
        try:
            for packet in packets:
                self._container.mux(packet)
        except OSError as exc:
            self._failed = True
            raise unwritable(self._shown_as, exc) from None

    def _mux_audio(self) -> None:
        """The audio up to the video's duration: its packets copied, or re-encoded."""
        if self._audio_in is None or self._audio_out is None:
            return
        duration = self.end_time
        source = self._audio_in.streams.audio[0]
        if self._reencode:
            self._reencode_audio(source, duration)
            return
        for packet in self._audio_in.demux(source):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * source.time_base > duration:
                break
            packet.stream = self._audio_out
            self._mux([packet])

    def _reencode_audio(self, source: av.audio.stream.AudioStream, duration: Fraction) -> None:
        """Decode the driving clip's sound up to `duration` seconds and encode it again,
        stereo at 48 kHz, from where it began."""
        import av

        resample = av.AudioResampler(format=self._audio_out.codec_context.format, layout="stereo",
                                     rate=VOICE_RATE)
        # stamped in samples (in the source's own time base, an .avi's 1152 samples a tick,
        # the encoder's 1024-sample packets came out of order)
        pts: int | None = None
        for frame in self._sound_frames(source, duration):
            if pts is None:
                pts = round((frame.time or 0.0) * VOICE_RATE)
            for out in resample.resample(frame):
                out.pts, out.time_base = pts, Fraction(1, VOICE_RATE)
                pts += out.samples
                self._encode_audio(out)
        self._encode_audio(None)

    def _sound_frames(self, source: av.audio.stream.AudioStream, duration: Fraction
                      ) -> Iterator[av.AudioFrame]:
        """The source's decoded sound up to `duration` seconds; a sound that stops decoding
        ends there."""
        import av

        assert self._audio_in is not None
        try:
            for frame in self._audio_in.decode(source):
                if frame.time is not None and frame.time > duration:
                    return
                yield frame
        except av.error.FFmpegError as exc:
            log.warning("%s: its sound ends where it could not be decoded (%s)",
                        self._audio_from, exc)

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        assert self._audio_out is not None
        self._mux(self._audio_out.encode(frame))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
