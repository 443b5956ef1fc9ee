"""Video files: phone clips stored on their side are read upright."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from streamer import landmarks as L
from streamer.sources import VideoFileSource
from streamer.tracker import FaceTracker
from streamer.video_io import read_video_frames, upright


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
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    assert upright(image, 0.0) is image
    assert upright(image, 90.0).shape == (3, 2, 1)
    assert np.array_equal(upright(image, -89.6), np.rot90(image, k=-1))
    assert np.array_equal(upright(image, 180.0), image[::-1, ::-1])
