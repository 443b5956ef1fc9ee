"""Per-frame inputs of the warp generator (see models/warp_generator.py), in numpy.

Control points: the mesh subset landmarks.WARP_POINTS, a ring around the head that carries
hair and neck with the head's rigid motion, and the crop border, pinned so the rendered crop
pastes back without a seam. The thin-plate spline maps *target* positions to *source*
positions (backward warp), so it interpolates the landmarks exactly.
"""

from __future__ import annotations

import numpy as np

from streamer import landmarks as L
from streamer.geometry import fit_similarity

RING_POINTS = 16  # points of the hair/neck ring
RING_RADIUS = 1.6  # ring radius, × the face's half-size
BORDER_PER_SIDE = 4  # border points per crop side (corners included once)
NUM_CTRL = len(L.WARP_POINTS) + RING_POINTS + 4 * BORDER_PER_SIDE
NUM_MOUTH = len(L.LIPS_INNER)
FIELD_SIZE = 64  # side of the low-resolution field the generator predicts
TPS_REGULARIZATION = 1e-6  # keeps the system solvable when two targets nearly coincide


def _ring(landmarks: np.ndarray) -> np.ndarray:
    """(RING_POINTS, 2) points around the face centre. landmarks: (478, ≥2) pixels."""
    pts = landmarks[:468, :2]
    centre = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    radius = RING_RADIUS * 0.5 * float((pts.max(axis=0) - pts.min(axis=0)).max())
    angles = np.linspace(0.0, 2.0 * np.pi, RING_POINTS, endpoint=False)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _border(size: int) -> np.ndarray:
    """(4 * BORDER_PER_SIDE, 2) points on the crop's outer edge, in pixels."""
    t = np.linspace(0.0, size, BORDER_PER_SIDE, endpoint=False)
    top = np.stack([t, np.zeros_like(t)], 1)
    right = np.stack([np.full_like(t, size), t], 1)
    bottom = np.stack([size - t, np.full_like(t, size)], 1)
    left = np.stack([np.zeros_like(t), size - t], 1)
    return np.concatenate([top, right, bottom, left])


def source_points(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """The portrait's control points, (NUM_CTRL, 2) crop pixels."""
    return np.concatenate([crop_landmarks[L.WARP_POINTS, :2], _ring(crop_landmarks), _border(size)])


def target_points(source_lm: np.ndarray, target_lm: np.ndarray, size: int) -> np.ndarray:
    """Control points for target landmarks: the ring follows the head's 2D similarity motion.

    source_lm, target_lm: (478, 3) crop pixels → (NUM_CTRL, 2) crop pixels."""
    flat = lambda a: np.concatenate([a[:, :2], np.zeros((len(a), 1))], 1)  # noqa: E731
    head = fit_similarity(flat(source_lm[L.RIGID]), flat(target_lm[L.RIGID]))
    ring = head.apply(flat(_ring(source_lm)))[:, :2]
    return np.concatenate([target_lm[L.WARP_POINTS, :2], ring, _border(size)])


def normalize(points: np.ndarray, size: int) -> np.ndarray:
    """Crop pixels (continuous, pixel centres at i + 0.5) → [-1, 1] (align_corners=False)."""
    return (points * (2.0 / size) - 1.0).astype(np.float32)


def solve_tps(targets: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Thin-plate spline f with f(targets_i) ≈ sources_i. Both (N, 2) normalized.

    Returns (N + 3, 2) float32: N radial weights, then the affine part (1, x, y)."""
    t = targets.astype(np.float64)
    n = len(t)
    r2 = ((t[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    k = r2 * np.log(np.maximum(r2, 1e-12))
    k[np.diag_indices(n)] = TPS_REGULARIZATION
    p = np.concatenate([np.ones((n, 1)), t], 1)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
    b = np.zeros((n + 3, 2))
    b[:n] = sources
    return np.linalg.solve(a, b).astype(np.float32)


def mouth_frame(target_lm: np.ndarray, size: int) -> np.ndarray:
    """(8,) float32 describing the target mouth opening for the interior shader.

    Upper-lip point p13 (normalized); the opening axis, perpendicular to the lip line and
    divided by the opening, so v = 0 at the upper lip and 1 at the lower; the across axis
    divided by the half-width, so u = ±1 at the corners; teeth strength; layer strength
    (0 for a closed mouth)."""
    to_norm = 2.0 / size
    up, low = target_lm[13, :2] * to_norm - 1.0, target_lm[14, :2] * to_norm - 1.0
    across = (target_lm[308, :2] - target_lm[78, :2]) * to_norm
    half_width = max(float(np.linalg.norm(across)) / 2.0, 1e-6)
    across_unit = across / (2.0 * half_width)
    normal = np.array([-across_unit[1], across_unit[0]])
    opening = float(np.dot(low - up, normal))
    if opening < 0:
        normal, opening = -normal, -opening
    opening = max(opening, 1e-6)
    gap_iod = np.linalg.norm(target_lm[14, :2] - target_lm[13, :2]) / max(L.iod(target_lm), 1e-6)
    teeth = float(np.clip((gap_iod - 0.06) / 0.12, 0.0, 1.0))
    strength = float(np.clip((gap_iod - 0.025) / 0.04, 0.0, 1.0))  # none for a closed mouth
    return np.array(
        [up[0], up[1], *(normal / opening), *(across_unit / half_width), teeth, strength],
        np.float32,
    )


def mouth_box(target_lm: np.ndarray, size: int) -> np.ndarray:
    """(4,) int32 pixel box x0, y0, x1, y1 around the target's inner lips, inside the crop."""
    pts = target_lm[L.LIPS_INNER, :2]
    pad = 0.06 * L.iod(target_lm) + 2.0
    x0, y0 = np.floor(pts.min(axis=0) - pad)
    x1, y1 = np.ceil(pts.max(axis=0) + pad)
    box = np.array([max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)])
    if box[2] <= box[0] or box[3] <= box[1]:  # mouth outside the crop: an empty 1-px box
        box = np.array([0, 0, 1, 1])
    return box.astype(np.int32)
