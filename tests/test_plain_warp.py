"""benchmarks.plain_warp on the astronaut photo with synthetic landmarks."""

from __future__ import annotations

import numpy as np

from benchmarks.plain_warp import PlainWarper, _border_points, plain_warp


def _face_landmarks(seed: int = 0) -> np.ndarray:
    """(478, 3) float32: points scattered over an ellipse around the astronaut's face."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, 478)
    radius = np.sqrt(rng.uniform(0, 1, 478))
    x = 215 + 55 * radius * np.cos(angle)
    y = 120 + 75 * radius * np.sin(angle)
    return np.stack([x, y, np.zeros(478)], axis=1).astype(np.float32)


def test_border_points_are_corners_and_midpoints():
    pts = _border_points(11, 5)
    assert pts.shape == (8, 2)
    assert {tuple(p) for p in pts} == {
        (0, 0),
        (5, 0),
        (10, 0),
        (0, 2),
        (10, 2),
        (0, 4),
        (5, 4),
        (10, 4),
    }


def test_identity_warp_returns_the_source(astronaut_bgr):
    lm = _face_landmarks()
    out = plain_warp(astronaut_bgr, lm, lm)
    assert out.shape == astronaut_bgr.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - astronaut_bgr.astype(int))
    assert diff.max() <= 1


def test_translation_moves_the_face_and_keeps_the_corners(astronaut_bgr):
    lm = _face_landmarks()
    dx, dy = 12, -7
    moved = lm + np.array([dx, dy, 0], np.float32)
    out = plain_warp(astronaut_bgr, lm, moved)
    # Inside the face every triangle is purely translated: an exact integer shift.
    ys, xs = slice(100, 140), slice(200, 230)
    want = astronaut_bgr[100 - dy : 140 - dy, 200 - dx : 230 - dx]
    diff = np.abs(out[ys, xs].astype(int) - want.astype(int))
    assert diff.max() <= 1
    # And it did move: the unshifted face no longer matches.
    assert np.abs(out[ys, xs].astype(int) - astronaut_bgr[ys, xs].astype(int)).mean() > 5
    # The image corners are pinned; far from the ring the background does not move.
    assert np.array_equal(out[0, 0], astronaut_bgr[0, 0])
    assert np.array_equal(out[-40:, -40:], astronaut_bgr[-40:, -40:])


def test_warper_reuses_the_portrait_for_many_targets(astronaut_bgr):
    lm = _face_landmarks()
    warper = PlainWarper(astronaut_bgr, lm)
    opened = lm.copy()
    opened[lm[:, 1] > 150, 1] += 6  # the lower face drops: a stretch, not a shift
    a = warper.warp(opened)
    b = plain_warp(astronaut_bgr, lm, opened)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, astronaut_bgr)


def test_affine_motion_inside_the_face_matches_warp_affine(astronaut_bgr):
    import cv2

    lm = _face_landmarks()
    # Rotate 8° and shear about the face centre: catches a transposed per-triangle map.
    m = cv2.getRotationMatrix2D((215.0, 120.0), 8.0, 1.05)
    m[0, 1] += 0.05
    moved = lm.copy()
    moved[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    out = plain_warp(astronaut_bgr, lm, moved)
    want = cv2.warpAffine(astronaut_bgr, m, astronaut_bgr.shape[1::-1], flags=cv2.INTER_LINEAR)
    ys, xs = slice(95, 145), slice(195, 235)
    diff = np.abs(out[ys, xs].astype(int) - want[ys, xs].astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 3
