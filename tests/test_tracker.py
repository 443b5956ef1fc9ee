import cv2
import numpy as np
import pytest

from streamer import landmarks as L
from streamer.tracker import NUM_LANDMARKS, FaceTracker, TrackerConfig


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker(video=False) as t:
        yield t


def test_finds_478_landmarks_on_a_real_face(tracker, astronaut_bgr):
    lm = tracker.detect(astronaut_bgr)
    assert lm is not None and lm.shape == (NUM_LANDMARKS, 3) and lm.dtype == np.float32
    h, w = astronaut_bgr.shape[:2]
    assert (lm[:, 0] > 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] < h).all()
    assert 40 < L.iod(lm) < 200
    assert lm[468, 0] < lm[473, 0]  # iris 468 belongs to the eye on the image's left


def test_no_face_gives_none(tracker, data_dir):
    for name in ("no_face_dog.jpg", "no_face_cartoon_alpaca.jpg"):
        image = cv2.imread(str(data_dir / "portraits" / name))
        assert tracker.detect(image) is None
    assert tracker.detect(np.zeros((64, 64, 3), np.uint8)) is None


def test_largest_of_two_faces(tracker, astronaut_bgr):
    face = astronaut_bgr[20:300, 110:390]  # (280, 280) around the face
    canvas = np.full((300, 520, 3), 127, np.uint8)
    canvas[10:290, :280] = face
    canvas[60:260, 300:500] = cv2.resize(face, (200, 200))
    faces = tracker.detect_all(canvas)
    assert len(faces) == 2
    lm = tracker.detect(canvas)
    assert lm[:468, 0].mean() < 280  # the big face, on the left


def test_rejects_non_bgr_input(tracker):
    with pytest.raises(ValueError):
        tracker.detect(np.zeros((32, 32), np.uint8))


def test_closed_tracker_refuses_work(astronaut_bgr):
    t = FaceTracker(video=True)
    t.close()
    t.close()  # twice is fine
    with pytest.raises(RuntimeError):
        t.detect(astronaut_bgr)


def _first_read_drift(image: np.ndarray, lock_on: int, gap: bool = False) -> float:
    """Mean distance (% of the eye distance) of a video tracker's first read of a still frame
    from its settled read (the mean of its fifth to tenth); gap: a frame without a face
    comes first, so the face is found, lost and found again."""
    with FaceTracker(TrackerConfig(lock_on=lock_on), video=True) as video:
        if gap:
            video.detect(image)
            assert video.detect(np.zeros_like(image)) is None
        reads = [video.detect(image) for _ in range(10)]
    settled = np.mean(reads[4:], axis=0)
    return float(np.linalg.norm(reads[0][:, :2] - settled[:, :2], axis=1).mean()
                 / L.iod(settled) * 100)


@pytest.mark.parametrize("gap", [False, True], ids=["first frame", "found again"])
def test_a_face_just_found_is_read_as_the_tracker_settles(astronaut_bgr, gap):
    """The first read of a face comes from the detector's box, the rest from the mesh's own:
    without reading it again the first read of a still frame stands off the settled one."""
    image = cv2.resize(astronaut_bgr, (256, 256), interpolation=cv2.INTER_AREA)
    assert _first_read_drift(image, lock_on=0, gap=gap) > 1.0
    assert _first_read_drift(image, TrackerConfig().lock_on, gap=gap) < 0.5
