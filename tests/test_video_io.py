"""Video files: phone clips stored on their side are read upright; a written video keeps
the driving clip's sound, in time, whatever the two containers. Pictures: a phone photo is
read upright, a cut-out portrait's transparency is laid over white."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from streamer import landmarks as L
from streamer.portrait import EnrollConfig, enroll_images
from streamer.sources import VideoFileSource
from streamer.tracker import FaceTracker
from streamer.video_io import VideoWriter, read_image, read_video_frames, upright

RATE = 48_000
TONE_HZ, TONE_FROM = 440.0, 0.3  # the driving clip's sound: silence, then a tone from 0.3 s


def _phone_clip(path: Path, picture: np.ndarray, rotation: int, frames: int = 6) -> None:
    """A clip whose stored frames are `picture` turned by -rotation degrees (as a phone
    stores a portrait video on its side), with a display matrix that turns them back."""
    stored = np.ascontiguousarray(np.rot90(picture, k=-rotation // 90))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = stored.shape[1], stored.shape[0]
        stream.pix_fmt = "yuv444p"
        stream.set_display_rotation(rotation)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _upright_face(image: np.ndarray) -> bool:
    with FaceTracker(video=False) as tracker:
        lm = tracker.detect(image)
    if lm is None:
        return False
    down = lm[152, :2] - lm[10, :2]  # forehead → chin
    return bool(down[1] > 0.8 * np.linalg.norm(down) and down[1] > L.iod(lm))


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_phone_clip_is_read_upright(astronaut_bgr, tmp_path, rotation):
    picture = np.ascontiguousarray(astronaut_bgr[:, 64:448])  # 512 × 384: shows the turn
    clip = tmp_path / f"phone{rotation}.mp4"
    _phone_clip(clip, picture, rotation)
    frames = list(read_video_frames(clip))
    assert len(frames) == 6 and frames[0].shape == picture.shape
    assert np.abs(frames[0].astype(int) - picture).mean() < 4.0
    assert _upright_face(frames[0])
    source = VideoFileSource(clip, loop=False, realtime=False)
    try:
        played = source.read(timeout=5.0)
    finally:
        source.close()
    assert played is not None and played.image.shape == picture.shape
    assert np.abs(played.image.astype(int) - picture).mean() < 4.0


def test_upright_turns_by_quarter_turns_only():
    image = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)  # a BGR frame, as decoded
    assert upright(image, 0.0) is image
    assert np.array_equal(upright(image, 90.0), np.rot90(image, k=1))
    assert np.array_equal(upright(image, -89.6), np.rot90(image, k=-1))
    assert np.array_equal(upright(image, 180.0), image[::-1, ::-1])


def _clip_with_sound(path: Path, video_codec: str, sound_codec: str, rate: int = RATE,
                     channels: int = 2) -> None:
    """1 s of 64² video at 30 fps with 1 s of sound: silent, then a 440 Hz tone."""
    t = np.arange(rate) / rate
    tone = np.where(t >= TONE_FROM, 0.3 * np.sin(2 * np.pi * TONE_HZ * t), 0.0)
    samples = np.repeat((tone * 32767).astype(np.int16)[:, None], channels, axis=1)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=30)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        sound = container.add_stream(sound_codec, rate=rate)
        sound.layout = layout
        for i in range(30):
            picture = np.full((64, 64, 3), 8 * i, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")):
                container.mux(packet)
        step = sound.codec_context.frame_size or 1024
        for start in range(0, rate - step + 1, step):
            frame = av.AudioFrame.from_ndarray(samples[start:start + step].reshape(1, -1),
                                               format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            for packet in sound.encode(frame):
                container.mux(packet)
        for stream in (sound, video):
            for packet in stream.encode():
                container.mux(packet)


def _sound_of(path: Path) -> tuple[str, np.ndarray]:
    """(codec, mono samples at 48 kHz from the file's time 0)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.codec.canonical_name
        resample = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks, start = [], None
        for frame in container.decode(stream):
            start = frame.time if start is None else start
            chunks += [out.to_ndarray().ravel() for out in resample.resample(frame)]
    lead = np.zeros(max(0, round(start * RATE)), np.float32)
    return codec, np.concatenate([lead, *chunks])


# name: (container, video codec, sound codec, sample rate, channels)
SOURCES = {
    "aac": ("mp4", "libx264", "aac", RATE, 2),
    "pcm": ("avi", "mpeg4", "pcm_s16le", RATE, 2),
    "flac": ("mkv", "libx264", "flac", RATE, 2),
    "opus": ("webm", "libvpx-vp9", "libopus", RATE, 2),
    "mp3": ("avi", "mpeg4", "libmp3lame", RATE, 2),
    "pcm mono 44.1 kHz": ("mov", "libx264", "pcm_s16le", 44_100, 1),
}
# what each output may carry: what the container takes and common players play
PLAYED = {".mp4": {"aac", "mp3"}, ".m4v": {"aac"}, ".mov": {"aac", "mp3", "pcm_s16le"},
          ".avi": {"mp3", "pcm_s16le"}}


@pytest.fixture(scope="module")
def sound_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sound")
    clips = {}
    for i, (name, (suffix, *codecs)) in enumerate(SOURCES.items()):
        clips[name] = folder / f"drive{i}.{suffix}"
        _clip_with_sound(clips[name], *codecs)
    return clips


@pytest.mark.parametrize("output", [".mp4", ".m4v", ".mov", ".mkv", ".avi"])
@pytest.mark.parametrize("source", list(SOURCES))
def test_the_driving_clips_sound_goes_into_every_container_in_time(
        sound_clips, tmp_path, source, output):
    out = tmp_path / f"avatar{output}"
    with VideoWriter(out, 30, audio_from=sound_clips[source]) as writer:
        for i in range(24):  # 0.8 s
            writer.write(np.full((64, 64, 3), 10 * i, np.uint8))
    assert len(list(read_video_frames(out))) == 24
    codec, heard = _sound_of(out)
    kept = SOURCES[source][2].removeprefix("lib").replace("mp3lame", "mp3")
    assert codec in PLAYED.get(output, {kept}), codec  # .mkv keeps every one as it is
    loud = np.flatnonzero(np.abs(heard) > 0.1)
    assert abs(loud[0] / RATE - TONE_FROM) < 0.03  # the tone starts where it did
    # and the sound ends with the picture, or with the packet the picture ends in (a FLAC
    # packet holds 0.096 s)
    assert 0.78 <= len(heard) / RATE <= 0.9
    part = heard[loud[0] + 2048: loud[0] + 2048 + 8192]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    assert abs(np.argmax(spectrum) * RATE / len(part) - TONE_HZ) < 10  # the same tone


def test_frames_are_written_when_they_show_from_0_and_in_order(tmp_path):
    out = tmp_path / "timed.mp4"
    with VideoWriter(out, 30) as writer:
        for t in (-0.1, 0.0, 0.0, 0.2, 0.1, 0.3):  # before 0, twice at 0, back in time
            writer.write(np.zeros((64, 64, 3), np.uint8), t)
        assert writer.end_time == pytest.approx(0.3 + 1 / 30)
    with av.open(str(out)) as container:
        shown = [frame.time for frame in container.decode(video=0)]
    assert shown[0] == 0.0 and all(b > a for a, b in zip(shown, shown[1:], strict=False))
    assert shown[3] == pytest.approx(0.2, abs=1e-3) and shown[5] == pytest.approx(0.3, abs=1e-3)


def test_a_phone_photo_is_read_upright(astronaut_bgr, tmp_path):
    """A JPEG stored on its side with an EXIF orientation (6: turn it a quarter clockwise),
    as phones write them."""
    stored = np.ascontiguousarray(np.rot90(astronaut_bgr[:, :400, ::-1], k=1))  # RGB
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=95)
    as_stored = cv2.imread(str(path), cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR)
    assert as_stored.shape == (400, 512, 3) and not _upright_face(as_stored)
    read = read_image(path)
    assert read.shape == (512, 400, 3) and _upright_face(read)


def test_a_cut_out_stored_on_its_side_keeps_its_alpha_where_its_colour_goes(astronaut_bgr,
                                                                           tmp_path):
    """A PNG with transparency and an EXIF orientation (6): the alpha is turned upright with
    the colour, so the transparent band stored on the left lies along the top, white."""
    stored = np.ascontiguousarray(np.rot90(astronaut_bgr[:, :400, ::-1], k=1))  # RGB
    alpha = np.full(stored.shape[:2], 255, np.uint8)
    alpha[:, :60] = 0  # the stored picture's left edge: the top once upright
    image = Image.fromarray(np.dstack([stored, alpha]), "RGBA")
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.png"
    image.save(path, exif=exif)
    read = read_image(path)
    assert read.shape == (512, 400, 3) and _upright_face(read)
    assert (read[:55] == 255).all()  # the transparent band, upright
    assert np.abs(read[70:].astype(int) - astronaut_bgr[70:, :400]).max() <= 1


def _cut_out(picture: np.ndarray, under: np.ndarray, depth: type = np.uint8) -> np.ndarray:
    """picture as a cut-out: BGRA, opaque inside an ellipse around the head and shoulders
    with a soft edge, and `under` (what the cutting program left) where it is transparent."""
    h, w = picture.shape[:2]
    inside = np.zeros((h, w), np.float32)
    cv2.ellipse(inside, (w // 2, h // 2 - 40), (190, 240), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(inside, (0, 0), 3.0)
    colour = np.where(alpha[..., None] > 0, picture, under)
    top = np.iinfo(depth).max
    scale = top / 255.0
    return np.dstack([colour * scale, alpha * top]).round().astype(depth)


@pytest.mark.parametrize("suffix, depth", [(".png", np.uint8), (".png", np.uint16),
                                           (".webp", np.uint8), (".tiff", np.uint8)])
def test_a_cut_out_portrait_is_laid_over_white(astronaut_bgr, tmp_path, suffix, depth):
    """Under a cut-out's transparent pixels a file holds anything (black, noise): read, it
    shows white there and the portrait it enrolls does not depend on what was under."""
    picture = astronaut_bgr
    noise = np.random.default_rng(0).integers(0, 256, picture.shape, np.uint8)
    reads = []
    for name, under in (("black", np.zeros_like(picture)), ("noise", noise)):
        path = tmp_path / f"{name}{suffix}"
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else []  # lossless
        assert cv2.imwrite(str(path), _cut_out(picture, under, depth), params)
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[2] == 4
        reads.append(read_image(path))
    black, noisy = reads
    assert black.shape == picture.shape and black.dtype == np.uint8
    assert np.abs(black.astype(int) - noisy.astype(int)).max() <= 1
    assert (black[:8, :8] == 255).all() and (black[-8:, -8:] == 255).all()  # the corners
    face = black[100:260, 180:330].astype(int)  # opaque: the picture as it was
    assert np.abs(face - picture[100:260, 180:330]).max() <= 1
    a, b = (enroll_images([r], EnrollConfig(crop_size=256)) for r in reads)
    assert np.abs(a.crop_landmarks - b.crop_landmarks).max() < 0.5


def test_a_folder_given_for_a_clip_is_named_so(tmp_path):
    """A folder where a clip or picture belongs says so (it was 'no such file')."""
    from streamer.errors import VideoReadError

    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    with pytest.raises(VideoReadError, match="clip.mp4: a folder, not a file"):
        list(read_video_frames(folder))
    with pytest.raises(VideoReadError, match="nothing.mp4: no such file"):
        list(read_video_frames(tmp_path / "nothing.mp4"))
    if Path("/dev/null").exists():  # a device is there, and no file (it was "no such file")
        with pytest.raises(VideoReadError, match="^/dev/null: not a file$"):
            list(read_video_frames("/dev/null"))


def test_a_pictures_size_is_read_from_its_header_alone():
    """declared_size: each format the runtime takes, at its stored size; None for bytes that
    are no picture or a header cut short; a PNG that would decode to 600 MB."""
    from streamer.video_io import declared_size
    from tests.helpers import flat_png

    image = np.zeros((48, 80, 3), np.uint8)
    for suffix in (".jpg", ".png", ".webp", ".bmp", ".tiff"):
        ok, encoded = cv2.imencode(suffix, image)
        assert ok and declared_size(encoded.tobytes()) == (80, 48), suffix
    assert declared_size(b"not a picture at all") is None
    assert declared_size(cv2.imencode(".png", image)[1].tobytes()[:20]) is None
    assert declared_size(flat_png(20_000, 10_000)) == (20_000, 10_000)
