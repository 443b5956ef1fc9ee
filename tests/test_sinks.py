"""Sinks: registry, fitting, virtual camera (fake pyvirtualcam backend), preview, record."""

from __future__ import annotations

import glob
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam
from fakes import (
    FakeProcessor,
    FakeSink,
    MissingDeviceBackend,
    fake_cam_backend,
    numbered_image,
    write_clip,
)

from streamer import sink_record
from streamer.errors import SinkUnavailableError
from streamer.frames import Frame
from streamer.pipeline import Pipeline
from streamer.sink_preview import PreviewSink
from streamer.sink_record import RecordConfig, RecordSink
from streamer.sink_virtualcam import VirtualCamConfig, VirtualCamSink, install_hint
from streamer.sinks import create_sink, crop_to_fill, fit_frame, letterbox, register_sink
from streamer.sources import VideoFileSource
from streamer.video_io import read_timed_frames, read_video_frames


@pytest.fixture(autouse=True)
def restore_pyvirtualcam_backends():
    """Fake backends registered by a test are removed after it."""
    saved = dict(pyvirtualcam.camera.BACKENDS)
    yield
    pyvirtualcam.camera.BACKENDS.clear()
    pyvirtualcam.camera.BACKENDS.update(saved)


def frame(index: int, image: np.ndarray) -> Frame:
    return Frame(image, time.monotonic(), index)


# --- registry -----------------------------------------------------------------------------


def test_registered_factories_are_created_by_name():
    register_sink("fake-test", lambda **kw: FakeSink(name="fake-test", **kw))
    sink = create_sink("fake-test", delay_s=0.5)
    assert isinstance(sink, FakeSink) and sink.delay_s == 0.5


def test_unknown_sink_names_the_known_ones():
    with pytest.raises(SinkUnavailableError, match="unknown output 'nope'.*virtualcam"):
        create_sink("nope")


def test_builtin_sinks_are_registered():
    assert isinstance(create_sink("virtualcam", size=(640, 360)), VirtualCamSink)
    assert isinstance(create_sink("record", path="x.mp4"), RecordSink)
    assert isinstance(create_sink("preview", on_key=print), PreviewSink)


# --- fitting ------------------------------------------------------------------------------


def test_letterbox_keeps_the_whole_image_between_black_bars():
    square = np.full((512, 512, 3), 200, np.uint8)
    out = letterbox(square, (1280, 720))
    assert out.shape == (720, 1280, 3)
    assert out[:, :280].max() == 0 and out[:, -280:].max() == 0  # bars: (1280-720)/2
    assert out[:, 290:990].min() == 200


def test_crop_fills_the_frame_and_keeps_the_middle_where_no_face_is_given():
    tall = np.zeros((800, 400, 3), np.uint8)
    tall[300:500] = 255  # a band in the middle survives, the top and bottom are cut
    out = crop_to_fill(tall, (1280, 720))
    assert out.shape == (720, 1280, 3)
    assert out[360, 640].tolist() == [255, 255, 255]
    assert out[0].max() == 0 and out[-1].max() == 0


def test_crop_keeps_the_face_in_view_where_it_is_given():
    # cut equally from both sides, a face in the top third of a tall portrait (the Mona
    # Lisa's) was cut away
    tall = np.zeros((800, 400, 3), np.uint8)
    tall[100:200] = 255  # the face, near the top
    out = crop_to_fill(tall, (1280, 720), face=(200.0, 150.0))
    assert out[360, 640].tolist() == [255, 255, 255]
    top = crop_to_fill(tall, (1280, 720), face=(200.0, 10.0))  # clamped to the picture
    assert np.array_equal(top, crop_to_fill(tall[:225], (1280, 720)))
    assert fit_frame(tall, (1280, 720), "crop", (200.0, 150.0))[360, 640].max() == 255


def test_fit_rejects_unknown_modes():
    with pytest.raises(ValueError, match="letterbox"):
        fit_frame(np.zeros((4, 4, 3), np.uint8), (8, 8), "stretch")


# --- virtual camera -----------------------------------------------------------------------


def test_virtualcam_sends_fitted_bgr_frames_at_the_standard_size():
    backend = fake_cam_backend()
    sink = VirtualCamSink(VirtualCamConfig(size=(1280, 720), backend="fake"))
    sink.open(512, 512, 30.0)
    image = np.zeros((512, 512, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    for i in range(5):
        sink.send(frame(i, image))
    sink.close()
    sink.close()
    (cam,) = backend.instances
    assert (cam.width, cam.height, cam.fps) == (1280, 720, 30.0)
    assert cam.fourcc == pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)
    assert cam.sizes == [1280 * 720 * 3] * 5
    assert cam.last[360, 640].tolist() == [255, 0, 0]  # still BGR: pyvirtualcam converts
    assert cam.last[360, 10].tolist() == [0, 0, 0]  # letterbox bar
    assert cam.closed == 1
    assert sink.device is None


def test_virtualcam_crop_mode_has_no_bars():
    backend = fake_cam_backend()
    sink = VirtualCamSink(VirtualCamConfig(size=(640, 360), fit="crop", backend="fake"))
    sink.open(96, 96, 25.0)
    sink.send(frame(0, np.full((96, 96, 3), 90, np.uint8)))
    sink.close()
    assert backend.instances[0].last.min() == 90


def test_virtualcam_without_a_device_says_what_to_install():
    pyvirtualcam.register_backend("missing", MissingDeviceBackend)
    sink = VirtualCamSink(VirtualCamConfig(backend="missing"))
    with pytest.raises(SinkUnavailableError, match="no virtual camera device") as info:
        sink.open(512, 512, 30.0)
    assert install_hint() in str(info.value)
    sink.close()


@pytest.mark.skipif(bool(glob.glob("/dev/video*")), reason="a real video device exists")
def test_virtualcam_on_this_machine_without_v4l2loopback_is_unavailable():
    with pytest.raises(SinkUnavailableError):
        VirtualCamSink().open(512, 512, 30.0)


def test_install_hints_per_platform():
    linux = install_hint("Linux")
    assert "sudo apt install v4l2loopback-dkms" in linux
    assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1" in linux
    assert "OBS Studio ≥ 26" in install_hint("Windows") and "Virtual Camera" in install_hint(
        "Windows"
    )
    assert "OBS Studio ≥ 30" in install_hint("Darwin")


class TallProcessor(FakeProcessor):
    """Gives a tall frame with its "face", a white band, near the top, and says where."""

    face_centre = (50.0, 40.0)

    def process(self, image: np.ndarray) -> np.ndarray:
        super().process(image)
        tall = np.zeros((400, 100, 3), np.uint8)
        tall[20:60] = 255
        return tall


def test_virtualcam_crop_keeps_the_face_the_pipeline_was_told_of(tmp_path):
    backend = fake_cam_backend()
    clip = write_clip(tmp_path / "clip.mp4", frames=5, fps=25.0)
    source = VideoFileSource(clip, loop=False, realtime=False)
    sink = VirtualCamSink(VirtualCamConfig(size=(640, 360), fit="crop", backend="fake"))
    with Pipeline(source, TallProcessor(), [sink]) as pipeline:
        pipeline.run(duration=5.0)
    assert backend.instances[0].last[180, 320].tolist() == [255, 255, 255]  # not the middle


def test_virtualcam_through_the_pipeline_gets_every_frame_at_the_clip_pace(tmp_path):
    backend = fake_cam_backend()
    clip = write_clip(tmp_path / "clip.mp4", frames=25, fps=25.0)
    source = VideoFileSource(clip, loop=True, realtime=True)
    sink = VirtualCamSink(VirtualCamConfig(size=(640, 360), backend="fake"))
    with Pipeline(source, FakeProcessor(), [sink]) as pipeline:
        pipeline.run(duration=1.6)
    (cam,) = backend.instances
    assert cam.fps == 25.0 and (cam.width, cam.height) == (640, 360)
    assert set(cam.sizes) == {640 * 360 * 3}
    assert len(cam.sent_at) >= 0.8 * 1.6 * 25  # fast fake processor: ≥ 80 % delivered
    gaps = np.diff(cam.sent_at)
    assert np.median(gaps) == pytest.approx(1 / 25, abs=0.015)  # paced, not bursty
    assert cam.closed == 1


# --- preview ------------------------------------------------------------------------------


def test_preview_without_a_display_is_unavailable(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(SinkUnavailableError, match="DISPLAY"):
        PreviewSink().open(96, 96, 30.0)


class FakeWindows:
    """Stands in for OpenCV's HighGUI: records imshow, replays key presses."""

    def __init__(self, keys: list[int]) -> None:
        self.keys = keys
        self.shown: list[np.ndarray] = []
        self.visible = 1.0
        self.destroyed = 0

    def install(self, monkeypatch) -> None:
        monkeypatch.setenv("DISPLAY", ":99")
        monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
        monkeypatch.setattr(cv2, "resizeWindow", lambda *a: None)
        monkeypatch.setattr(cv2, "imshow", lambda title, image: self.shown.append(image))
        monkeypatch.setattr(cv2, "waitKey", lambda ms: self.keys.pop(0) if self.keys else -1)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: self.visible)
        monkeypatch.setattr(cv2, "destroyWindow", lambda *a: setattr(self, "destroyed", 1))


def test_preview_shows_frames_and_routes_keys(monkeypatch):
    windows = FakeWindows(keys=[ord("R") | 0x100, -1, ord("q")])
    windows.install(monkeypatch)
    keys, closed = [], []
    sink = PreviewSink(on_key=keys.append, overlay=lambda: ["p50 12 ms"], on_close=lambda: 1)
    sink.open(96, 96, 30.0)
    image = np.zeros((96, 96, 3), np.uint8)
    sink.send(frame(0, image))
    sink.send(frame(1, image))
    sink.poll()
    assert keys == [ord("R"), ord("q")]  # masked to 8 bits
    assert len(windows.shown) == 2
    assert windows.shown[0].any() and not image.any()  # overlay drawn on a copy only
    windows.visible = 0.0  # the user closes the window
    sink = PreviewSink(on_close=lambda: closed.append(True))
    sink.open(96, 96, 30.0)
    sink.send(frame(0, image))
    assert closed == [True]
    sink.close()
    sink.close()
    assert windows.destroyed == 1


# --- record -------------------------------------------------------------------------------


def test_record_writes_a_readable_mp4(tmp_path):
    path = tmp_path / "out.mp4"
    sink = RecordSink(RecordConfig(str(path)))
    sink.open(96, 64, 30.0)
    for i in range(12):
        sink.send(frame(i, numbered_image(i * 20, (96, 64))))
    sink.close()
    sink.close()
    frames = list(read_video_frames(path))
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)


def test_record_keeps_skipped_frames_time_so_the_file_plays_in_real_time(tmp_path):
    """Each frame shows at its index's time, the one before held over the skipped ones,
    however long: skipped frames had been encoded again, runs of at most 2 s, and on a
    loaded machine 616 s of `stream` gave 322 s of file."""
    import av

    path = tmp_path / "out.mp4"
    sink = RecordSink(RecordConfig(str(path)))
    sink.open(64, 48, 10.0)
    for i in (3, 4, 8, 108):  # 5, 6, 7 skipped upstream, then 10 s of them
        sink.send(frame(i, numbered_image(i, (64, 48))))
    sink.close()
    assert sink.frames_written == 4
    times = [t for _, t in read_timed_frames(path)]
    assert times == pytest.approx([0.0, 0.1, 0.5, 10.5], abs=1e-3)
    with av.open(str(path)) as container:
        assert container.duration / 1e6 == pytest.approx(10.6, abs=0.05)


@pytest.mark.parametrize("suffix", [".mp4", ".m4v", ".mov", ".mkv", ".avi"])
def test_a_recording_cut_off_by_a_kill_plays_up_to_its_last_second(tmp_path, suffix):
    """A process killed while it records (SIGKILL: no close, no flush) leaves a file that
    plays what it had written: an MP4 is written in fragments of a second, each flushed to
    disk. A plain MP4's index is written at close; without it no player opens the file."""
    import subprocess
    import sys

    path = tmp_path / f"cut{suffix}"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from fakes import numbered_image
from streamer.frames import Frame
from streamer.sink_record import RecordConfig, RecordSink
sink = RecordSink(RecordConfig({str(path)!r}))
sink.open(64, 48, 10.0)
for i in range(60):  # 6 s at 10 fps
    sink.send(Frame(image=numbered_image(i * 4), index=i, capture_ts=i / 10))
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    times = [t for _, t in read_timed_frames(path)]
    assert len(times) >= 40 and times[-1] - times[0] >= 3.9  # all but the last second or so
    assert np.diff(times[:4]) == pytest.approx([0.1] * 3, abs=1e-3)


def test_a_recording_whose_disk_fills_stops_with_one_line_and_plays_up_to_then(tmp_path):
    """A disk that fills half way (here the file's size limit, RLIMIT_FSIZE, in a child
    process): send() raises SinkUnavailableError saying how far the recording got and why,
    close() raises nothing more, and the file plays up to a second or two before that."""
    import subprocess
    import sys

    path = tmp_path / "full.mp4"
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np
from streamer.errors import SinkUnavailableError
from streamer.frames import Frame
from streamer.sink_record import RecordConfig, RecordSink
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))
noise = np.random.default_rng(0)
sink = RecordSink(RecordConfig({str(path)!r}))
sink.open(96, 64, 10.0)
try:
    for i in range(300):  # 30 s at 10 fps: far more than fits
        image = noise.integers(0, 256, (64, 96, 3), np.uint8)
        sink.send(Frame(image=image, index=i, capture_ts=i / 10))
    print("all written")
except SinkUnavailableError as exc:
    print(exc)
sink.close()
print("closed")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    said, closed = done.stdout.strip().splitlines()
    assert closed == "closed" and "Traceback" not in done.stderr
    stopped = re.fullmatch(
        rf"the recording stopped (\d+\.\d) s in \(cannot write {re.escape(str(path))}: file "
        r"too large\); the file plays up to a second or two before that", said)
    assert stopped, said
    at = float(stopped[1])
    times = [t for _, t in read_timed_frames(path)]
    # 5.1 s written, 0 → 3.1 s plays (its last frame shows to 3.2 s)
    assert at >= 3.0 and times[0] == 0.0 and times[-1] + 0.1 >= at - 2.0, (times[-1], said)
    assert np.diff(times) == pytest.approx([0.1] * (len(times) - 1), abs=1e-3)


def test_record_letterboxes_frames_of_another_size(tmp_path):
    path = tmp_path / "out.mp4"
    sink = RecordSink(RecordConfig(str(path)))
    sink.open(64, 48, 10.0)
    sink.send(frame(0, numbered_image(0, (64, 48))))
    sink.send(frame(1, numbered_image(1, (100, 100))))  # the portrait was switched
    sink.close()
    assert [f.shape for f in read_video_frames(path)] == [(48, 64, 3)] * 2


def test_record_falls_back_to_opencv_mp4v(tmp_path, monkeypatch):
    monkeypatch.setattr(sink_record, "WRITERS", [sink_record._OpenCVWriter])
    path = tmp_path / "out.mp4"
    sink = RecordSink(RecordConfig(str(path)))
    sink.open(64, 48, 25.0)
    for i in (0, 1, 2, 3, 6):  # 4 and 5 skipped: the mp4v file repeats frame 3
        sink.send(frame(i, numbered_image(i, (64, 48))))
    sink.close()
    assert len(list(read_video_frames(path))) == 7


def test_record_into_a_missing_folder_is_unavailable(tmp_path):
    sink = RecordSink(RecordConfig(str(tmp_path / "no" / "out.mp4")))
    with pytest.raises(SinkUnavailableError, match="no folder"):
        sink.open(64, 48, 25.0)


class FakeFeed:
    """A VoiceFeed the test speaks into: say(samples, arrived) calls every listener."""

    def __init__(self) -> None:
        self.listeners: list = []

    def listen(self, listener):  # type: ignore[no-untyped-def]
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def say(self, samples: np.ndarray, arrived: float) -> None:
        for listener in list(self.listeners):
            listener(samples, arrived)


def chunk(value: int) -> np.ndarray:
    return np.full((1, 1920), value, np.int16)


def test_the_voice_tape_lays_each_chunk_at_its_moment() -> None:
    feed = FakeFeed()
    tape = sink_record.VoiceTape(feed, start_ts=100.0)  # type: ignore[arg-type]
    feed.say(chunk(9), 99.99)  # before the first frame: not recorded
    feed.say(chunk(1), 100.04)  # heard [0.02, 0.04): starts at sample 960
    feed.say(chunk(2), 100.06)
    feed.say(chunk(3), 100.06)  # two chunks of one device read: laid end to end
    assert [(int(s[0, 0]), at) for s, at in tape.take()] == [(1, 960), (2, 1920), (3, 2880)]
    feed.say(chunk(4), 100.30)  # the microphone paused: silence up to its moment
    laid = tape.take()
    assert [at for _, at in laid] == list(range(3840, 13440 + 1, 960))
    assert all(int(s[0, 0]) == 0 for s, _ in laid[:-1]) and int(laid[-1][0][0, 0]) == 4
    for value in range(5, 12):  # a burst from a clock that runs fast: the last ones dropped
        feed.say(chunk(value), 100.30)
    assert [int(s[0, 0]) for s, _ in tape.take()] == [5, 6, 7]
    feed.say(chunk(12), 100.34)
    assert [(int(s[0, 0]), at) for s, at in tape.take(until=17280)] == []  # at 17280: cut
    tape.close()
    assert feed.listeners == []


@pytest.mark.parametrize("late", [(), (0, 30)])
def test_record_carries_the_voice_beside_the_avatar_frame_of_its_moment(tmp_path, late):
    """Frames of a camera at 25 fps, dark until 1 s, bright after; the voice silent until
    1 s, humming after, each 20 ms heard at the end of its moment: in the file, the hum
    starts where the bright frames do. So too where some frames came 0.1 s late, the first
    among them (as an avatar frame coming back from a server may): laid from the first
    frame's time, the hum began 0.1 s early."""
    import av

    feed = FakeFeed()
    path = tmp_path / "out.mp4"
    sink = RecordSink(RecordConfig(str(path)), voice=feed)  # type: ignore[arg-type]
    sink.open(64, 48, 25.0)
    t = np.arange(960) / 48_000
    hum = np.repeat((0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), 2)[None]
    for k in range(50):
        at = 100.0 + k * 0.04
        came = at + (0.1 if k in late else 0.0)
        sink.send(Frame(np.full((48, 64, 3), 220 if k >= 25 else 20, np.uint8), came, k))
        for half in (0.02, 0.04):
            feed.say(hum if k >= 25 else np.zeros_like(hum), at + half)
    sink.close()
    with av.open(str(path)) as container:
        video = [f.to_ndarray(format="gray").mean() for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        frames = list(container.decode(audio=0))
    start = float(frames[0].pts * frames[0].time_base)
    samples = np.concatenate([np.abs(f.to_ndarray()).max(axis=0) for f in frames])
    bright = next(i for i, v in enumerate(video) if v > 120) / 25.0
    loud = start + int(np.argmax(samples > 0.05)) / 48_000
    assert bright == pytest.approx(1.0)
    assert abs(loud - bright) < 0.03, f"hum at {loud:.3f} s, bright frame at {bright:.3f} s"
    assert start + len(samples) / 48_000 < 2.0 + 0.05  # nothing past the last frame's end


@pytest.mark.parametrize("heard_s", [0.5, 0.0])
def test_a_voice_that_ends_leaves_the_recordings_sound_as_long_as_its_picture(tmp_path,
                                                                             heard_s):
    """A sound file as the voice, 0.5 s long (or nothing heard at all), beside 2 s of frames:
    the file's sound had stopped where the voice did (0.7 s of sound beside 8 s of video, in
    a user's run); now silence carries it to the picture's end."""
    import av

    feed = FakeFeed()
    path = tmp_path / "out.mp4"
    sink = RecordSink(RecordConfig(str(path)), voice=feed)  # type: ignore[arg-type]
    sink.open(64, 48, 25.0)
    for k in range(50):
        at = 100.0 + k * 0.04
        sink.send(Frame(np.full((48, 64, 3), 120, np.uint8), at, k))
        if at + 0.04 <= 100.0 + heard_s:
            for half in (0.02, 0.04):
                feed.say(chunk(3000), at + half)
    sink.close()
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    start = float(frames[0].pts * frames[0].time_base)
    samples = np.concatenate([np.abs(f.to_ndarray()).max(axis=0) for f in frames])
    assert start + len(samples) / 48_000 == pytest.approx(2.0, abs=0.05)
    loud = samples > 0.05
    assert np.mean(loud[: int(0.9 * heard_s * 48_000)]) > 0.95 if heard_s else not loud.any()
    assert not loud[int((heard_s + 0.1) * 48_000):].any()  # silence after it
