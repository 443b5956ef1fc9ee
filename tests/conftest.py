"""Shared fixtures: the real data folder and a stock photo portrait."""

from __future__ import annotations

# First, before numpy: streamer keeps OpenBLAS to one thread, as `headcast` runs. Two threads'
# idle workers spin; on two cores they stalled the WebRTC tests' event loops (a viewer got
# 19-42 of about 65 audio frames in 1.3 s, in 60-230 ms gaps).
import streamer  # noqa: F401

# isort: split
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path | None:
    """HEADCAST_DATA if set, else ../shared/data next to the project; None if neither exists."""
    env = os.environ.get("HEADCAST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(PROJECT_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Path of the shared real data (portraits/, driving/, train/); skips when absent."""
    path = find_data_dir()
    if path is None:
        pytest.skip("shared data not found: set HEADCAST_DATA or provide ../shared/data")
    return path


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """(512, 512, 3) uint8 BGR: skimage's astronaut photo (Eileen Collins)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def two_faces(astronaut_bgr: np.ndarray):
    """(left_px, right_px) → a (320, 640, 3) BGR picture of two faces side by side: the
    astronaut's face in a left_px square, and mirrored in a right_px square (0: left out)."""

    face = astronaut_bgr[20:300, 110:390]  # (280, 280) around the face

    def draw(left_px: int, right_px: int) -> np.ndarray:
        canvas = np.full((320, 640, 3), 127, np.uint8)
        for px, x_mid, image in ((left_px, 160, face), (right_px, 480, face[:, ::-1])):
            if px:
                y0, x0 = 160 - px // 2, x_mid - px // 2
                canvas[y0:y0 + px, x0:x0 + px] = cv2.resize(image, (px, px))
        return canvas

    return draw


@pytest.fixture(scope="session")
def dog_beside_a_person(data_dir: Path, astronaut_bgr: np.ndarray) -> np.ndarray:
    """(720, 1280, 3) BGR: the shared dog photo top left, where the face mesh sees a "face",
    and the astronaut's head and shoulders bottom right, her face (some 100 px wide) under a
    fifth of the frame (benchmarks.face_check.beside_a_person)."""
    from benchmarks.face_check import place

    image = place(cv2.imread(str(data_dir / "portraits" / "no_face_dog.jpg")), (720, 1280),
                  287, 89, 19, 128)
    image[317:615, 991:1270] = cv2.resize(astronaut_bgr[0:300, 120:400], (279, 298))
    return image


@pytest.fixture(scope="session")
def astronaut_landmarks(astronaut_bgr: np.ndarray) -> np.ndarray:
    """(478, 3) float32 landmarks of the astronaut photo, pixels."""
    from streamer.tracker import FaceTracker

    with FaceTracker(video=False) as tracker:
        lm = tracker.detect(astronaut_bgr)
    assert lm is not None
    return lm


@pytest.fixture(scope="session")
def astronaut_portrait(astronaut_bgr: np.ndarray):
    """The astronaut enrolled at the 256 crop (fast)."""
    from streamer.portrait import EnrollConfig, enroll_images

    return enroll_images([astronaut_bgr], EnrollConfig(crop_size=256))


@pytest.fixture
def hum_wav(tmp_path: Path) -> Path:
    """3 s of a 440 Hz hum, mono, 48 kHz, as a WAV file (a --voice)."""
    from benchmarks.webrtc_latency import write_wav

    path = tmp_path / "hum.wav"
    t = np.arange(3 * 48_000) / 48_000
    write_wav(path, 0.4 * np.sin(2 * np.pi * 440 * t))
    return path
