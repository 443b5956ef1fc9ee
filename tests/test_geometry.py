import numpy as np

from streamer.geometry import face_frame, fit_similarity, orthonormalize, rotation_to_euler
from tests.helpers import rotation


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(40, 3))
    r = rotation(12, -5, 3)
    dst = 1.7 * src @ r.T + [3.0, -2.0, 0.5]
    fit = fit_similarity(src, dst)
    assert np.allclose(fit.rotation, r, atol=1e-9)
    assert abs(fit.scale - 1.7) < 1e-9
    assert np.allclose(fit.apply(src), dst, atol=1e-9)
    assert np.allclose(fit.invert(dst), src, atol=1e-9)


def test_euler_round_trip():
    for angles in [(10, 0, 0), (0, -8, 0), (0, 0, 15), (14, 6, -4)]:
        assert np.allclose(rotation_to_euler(rotation(*angles)), angles, atol=1e-6)


def test_face_frame_is_orthonormal_and_unit_is_iod(astronaut_landmarks):
    frame = face_frame(astronaut_landmarks)
    assert np.allclose(frame.axes.T @ frame.axes, np.eye(3), atol=1e-9)
    face = frame.to_face(astronaut_landmarks)
    assert abs(np.linalg.norm(face[33] - face[263]) - 1.0) < 1e-6
    assert face[152, 1] > face[10, 1]  # y runs forehead → chin
    assert np.allclose(frame.to_image(face), astronaut_landmarks, atol=1e-3)


def test_orthonormalize_returns_a_rotation():
    m = rotation(5, 5, 5) + 0.05
    r = orthonormalize(m)
    assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.linalg.det(r) > 0
