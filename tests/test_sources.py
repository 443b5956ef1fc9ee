"""Sources: newest-frame mailbox, video files played as cameras, cameras that disappear."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import fake_camera, write_clip

from streamer.errors import SourceLostError, VideoReadError
from streamer.sources import CameraSource, NewestSlot, PacedReader, VideoFileSource


@pytest.fixture
def clip(data_dir: Path) -> Path:
    """man_green_backdrop.mp4: 512×512, 25 fps, 78 frames."""
    return data_dir / "driving" / "man_green_backdrop.mp4"


def read_until_end(source, limit: float = 20.0) -> list:
    frames, end = [], time.monotonic() + limit
    with pytest.raises(EOFError):
        while time.monotonic() < end:
            frame = source.read(timeout=1.0)
            if frame is not None:
                frames.append(frame)
    return frames


# --- NewestSlot ---------------------------------------------------------------------------


def test_slot_keeps_only_the_newest_item():
    slot: NewestSlot[int] = NewestSlot()
    slot.put(1)
    slot.put(2)
    slot.put(3)
    assert slot.get(0) == 3
    assert slot.dropped == 2
    assert slot.get(0.01) is None


def test_slot_close_wakes_a_waiting_reader_and_ignores_later_puts():
    slot: NewestSlot[int] = NewestSlot()
    got = []
    reader = threading.Thread(target=lambda: got.append(slot.get(5.0)))
    reader.start()
    time.sleep(0.05)
    slot.close()
    reader.join(1.0)
    assert not reader.is_alive() and got == [None]
    slot.put(1)
    assert slot.get(0) is None


def test_slot_still_hands_out_the_last_item_after_close():
    slot: NewestSlot[str] = NewestSlot()
    slot.put("last")
    slot.close()
    assert slot.get(0) == "last"
    assert slot.closed and slot.empty


# --- video files --------------------------------------------------------------------------


def test_video_file_source_reads_a_real_clip_to_its_end(clip: Path):
    source = VideoFileSource(clip, loop=False, realtime=False)
    try:
        assert source.fps == pytest.approx(25.0)
        frames = read_until_end(source)
    finally:
        source.close()
    assert frames, "no frame read"
    assert frames[0].image.shape == (512, 512, 3)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] == 77  # the last frame is kept
    stamps = [f.capture_ts for f in frames]
    assert stamps == sorted(stamps)


def test_video_file_source_loops(clip: Path):
    with VideoFileSource(clip, loop=True, realtime=False) as source:
        end = time.monotonic() + 20.0
        frame = None
        while time.monotonic() < end and (frame is None or frame.index < 100):
            frame = source.read(timeout=1.0)
        assert frame is not None and frame.index >= 100  # more frames than the clip has


@pytest.mark.parametrize("name", ["one.mp4", "one.png"])
def test_a_clip_of_one_frame_or_a_picture_loops_too(tmp_path, name):
    # OpenCV's seek back to frame 0 says yes there and gives no frame: it had stopped the
    # stream with "no decodable frame after rewinding the video"
    path = tmp_path / name
    if name.endswith(".mp4"):
        write_clip(path, frames=1, fps=10.0)
    else:
        cv2.imwrite(str(path), np.full((48, 64, 3), 128, np.uint8))
    with VideoFileSource(path, loop=True, realtime=False) as source:
        end = time.monotonic() + 20.0
        frame = None
        while time.monotonic() < end and (frame is None or frame.index < 5):
            frame = source.read(timeout=1.0)
        assert frame is not None and frame.index >= 5 and frame.image.shape == (48, 64, 3)


def test_video_file_source_plays_at_the_files_frame_rate(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=20, fps=20.0)
    with VideoFileSource(clip, loop=True, realtime=True) as source:
        frames = []
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            frame = source.read(timeout=0.5)
            if frame is not None:
                frames.append(frame)
    # ~20 frames in one second; a wide range, this is pacing, not a speed target
    assert 12 <= len(frames) <= 24
    gaps = [b.capture_ts - a.capture_ts for a, b in zip(frames, frames[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.05, abs=0.02)
    assert [f.index for f in frames[:3]] == [0, 1, 2]  # nothing skipped at the file's pace
    assert frames[0].image.shape == (48, 64, 3)


def test_missing_video_file_is_a_clear_error(tmp_path):
    with pytest.raises(VideoReadError, match="no such file"):
        VideoFileSource(tmp_path / "nope.mp4")
    (tmp_path / "clips.mp4").mkdir()
    with pytest.raises(VideoReadError, match="clips.mp4: a folder, not a file"):
        VideoFileSource(tmp_path / "clips.mp4")


def test_a_file_that_is_not_a_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(VideoReadError, match="not a readable video"):
        VideoFileSource(bad)


# --- cameras ------------------------------------------------------------------------------


def test_camera_source_hands_over_the_newest_frame_and_drops_the_rest():
    source, reader = fake_camera(fps=100.0)
    try:
        first = source.read(timeout=1.0)
        time.sleep(0.2)  # a busy consumer: ~20 frames arrive meanwhile
        newer = source.read(timeout=1.0)
    finally:
        source.close()
    assert first is not None and newer is not None
    assert newer.index > first.index + 5
    assert source.dropped > 0
    assert newer.capture_ts <= time.monotonic()


def test_a_camera_that_disappears_is_reported_not_spun_on():
    source, reader = fake_camera(fps=100.0, fail_after=10, lost_after_s=0.3)
    frames = []
    start = time.monotonic()
    with pytest.raises(SourceLostError, match="stopped delivering frames"):
        while time.monotonic() - start < 5.0:
            frame = source.read(timeout=1.0)
            if frame is not None:
                frames.append(frame)
    source.close()
    assert frames and frames[-1].index <= 9
    # retried every 20 ms for 0.3 s: about 15 reads, never thousands
    assert reader.failed_reads < 40
    assert reader.closed == 1


def test_a_camera_that_comes_back_is_reopened_and_delivers_again():
    """Unplugged and plugged back: lost after lost_after_s, reopened every 50 ms (`waiting`
    meanwhile), delivering again from the third reopen on; no error."""
    source, reader = fake_camera(fps=100.0, fail_after=10, lost_after_s=0.2, camera_wait_s=5.0,
                                 back_after_reopens=3)
    frames, waited = [], False
    end = time.monotonic() + 5.0
    try:
        while time.monotonic() < end and (not frames or frames[-1].index < 30):
            frame = source.read(timeout=0.02)
            waited |= source.waiting
            if frame is not None:
                frames.append(frame)
    finally:
        source.close()
    assert waited and not source.waiting and reader.reopens == 3
    assert frames[-1].index >= 30  # delivering again
    gaps = [b.capture_ts - a.capture_ts for a, b in zip(frames, frames[1:], strict=False)]
    assert 0.2 < max(gaps) < 2.0  # one gap: lost, reopened, back


def test_while_the_camera_is_away_the_paced_reader_stands_in_with_black_frames():
    """PacedReader (the pipeline's and `client`'s read): camera frames as they come; while
    the camera is reopened, black frames of the last frame's size at the camera's rate (20
    fps: one per 50 ms, not one per read); camera frames again once it is back."""
    source, reader = fake_camera(fps=20.0, fail_after=10, lost_after_s=0.2, camera_wait_s=5.0,
                                 back_after_reopens=12)
    paced = PacedReader(source)
    got: list[tuple[float, bool, tuple[int, ...], int]] = []
    end = time.monotonic() + 5.0
    try:
        while time.monotonic() < end and not (got and got[-1][1] and got[-1][3] >= 14):
            frame = paced.read(0.01, index=-7)
            if frame is not None:
                camera = frame.index != -7
                got.append((frame.capture_ts, camera, frame.image.shape, frame.index))
                if not camera:
                    assert not frame.image.any()
    finally:
        source.close()
    black = [g for g in got if not g[1]]
    camera = [g for g in got if g[1]]
    assert reader.reopens == 12 and camera[-1][3] >= 14  # back, delivering again
    assert len(black) >= 8 and {g[2] for g in black} == {camera[0][2]}
    assert camera[9][0] < black[0][0] < black[-1][0] < camera[10][0]  # between the two runs
    gaps = np.diff([g[0] for g in black])
    assert 0.04 < np.median(gaps) < 0.08  # the camera's rate, though read every 10 ms


def test_the_paced_reader_gives_nothing_before_the_first_camera_frame():
    """No frame yet, no size to stand in with: a camera lost before its first frame gives
    None (the caller keeps waiting), never a black frame of a guessed size."""
    source, _ = fake_camera(fps=20.0, fail_after=0, lost_after_s=0.05, camera_wait_s=5.0)
    paced = PacedReader(source)
    try:
        deadline = time.monotonic() + 3.0
        while not source.waiting and time.monotonic() < deadline:
            assert paced.read(0.02) is None
        assert source.waiting
        assert all(paced.read(0.02) is None for _ in range(10))
    finally:
        source.close()


def test_a_camera_that_does_not_come_back_is_lost_after_the_wait():
    source, reader = fake_camera(fps=100.0, fail_after=10, lost_after_s=0.2, camera_wait_s=0.4)
    start = time.monotonic()
    with pytest.raises(SourceLostError, match="nor came back within 0.4 s"):
        while time.monotonic() - start < 5.0:
            source.read(timeout=0.05)
    source.close()
    assert 0.55 < time.monotonic() - start < 2.0
    assert 4 <= reader.reopens <= 10  # every 50 ms for 0.4 s


def test_the_opencv_reader_opens_its_device_again(clip: Path):
    """OpenCVReader.reopen, which a lost camera gets every second: released and opened anew
    (a file starts over), False where the device is gone."""
    import numpy as np

    from streamer.sources import OpenCVReader

    reader = OpenCVReader(str(clip))
    first = reader.read()
    for _ in range(5):
        reader.read()
    assert reader.reopen() and np.array_equal(reader.read(), first)
    reader.close()
    gone = OpenCVReader("/dev/headcast-no-such-camera")
    assert not gone.reopen() and gone.read() is None
    gone.close()


def test_camera_that_cannot_be_opened_says_what_to_do():
    with pytest.raises(SourceLostError, match="could not be opened.*--driving"):
        CameraSource("/dev/headcast-no-such-camera")


def test_close_joins_the_capture_thread_and_is_idempotent():
    before = {t.name for t in threading.enumerate()}
    source, reader = fake_camera()
    assert source.read(timeout=1.0) is not None
    source.close()
    source.close()
    assert "capture:fake camera" not in {t.name for t in threading.enumerate()} - before
    assert reader.closed == 1
    with pytest.raises(EOFError):
        source.read(timeout=0.1)
