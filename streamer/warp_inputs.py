"""Per-frame inputs of the warp generator (see models/warp_generator.py), in numpy.

Control points: the mesh subset landmarks.WARP_POINTS, a ring around the head that carries
hair and neck with the head's rigid motion, and the crop border, pinned so the rendered crop
pastes back without a seam. The thin-plate spline maps *target* positions to *source*
positions (backward warp). Its radial centres are the control points, but it is fitted by
weighted least squares to all 478 landmarks (plus ring and border), so landmarks between the
centres land where they should too; lips weigh most, the eyes' lids and irises least (the
generator maps the eyes lid to lid itself).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.geometry import fit_similarity

RING_POINTS = 16  # points of the hair/neck ring
RING_RADIUS = 1.6  # ring radius, × the face's half-size
BORDER_PER_SIDE = 4  # border points per crop side (corners included once)
NUM_CTRL = len(L.WARP_POINTS) + RING_POINTS + 4 * BORDER_PER_SIDE
NUM_MOUTH = len(L.LIPS_INNER)
FIELD_SIZE = 48  # side of the low-resolution field the generator predicts
TEETH_DEPTH_IOD = 0.07  # visible height of the upper teeth, IOD
TPS_SMOOTHING = 1e-3  # weight of the bending energy against the landmark misfit
HEAVY = sorted({p for pair in L.LIP_PAIRS for p in pair} | set(L.LIPS_INNER))
# The generator maps the eyes between their corners itself, lid line to lid line (a spline
# cannot shut an eye); the spline only has to keep the skin around them still.
EYE_INNER = sorted({p for pair in L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS for p in pair}
                   | set(L.RIGHT_IRIS + L.LEFT_IRIS))
# Fit weight of each fitted point: the 478 landmarks, then the ring, then the border.
FIT_WEIGHTS = np.ones(478 + RING_POINTS + 4 * BORDER_PER_SIDE)
FIT_WEIGHTS[HEAVY] = 30.0
FIT_WEIGHTS[EYE_INNER] = 0.05
FIT_WEIGHTS[478:] = 8.0
_ROOT_WEIGHTS = np.sqrt(FIT_WEIGHTS)[:, None]


_RING_ANGLES = np.linspace(0.0, 2.0 * np.pi, RING_POINTS, endpoint=False)
_RING_DIRECTIONS = np.stack([np.cos(_RING_ANGLES), np.sin(_RING_ANGLES)], axis=1)


def _ring(landmarks: np.ndarray) -> np.ndarray:
    """(RING_POINTS, 2) points around the face centre. landmarks: (478, ≥2) pixels."""
    pts = landmarks[:468, :2]
    low, high = pts.min(axis=0), pts.max(axis=0)
    radius = RING_RADIUS * 0.5 * float((high - low).max())
    return 0.5 * (low + high) + radius * _RING_DIRECTIONS


@lru_cache(maxsize=4)
def _border(size: int) -> np.ndarray:
    """(4 * BORDER_PER_SIDE, 2) points on the crop's outer edge, in pixels (read-only: made
    once per crop size)."""
    t = np.linspace(0.0, size, BORDER_PER_SIDE, endpoint=False)
    top = np.stack([t, np.zeros_like(t)], 1)
    right = np.stack([np.full_like(t, size), t], 1)
    bottom = np.stack([size - t, np.full_like(t, size)], 1)
    left = np.stack([np.zeros_like(t), size - t], 1)
    border = np.concatenate([top, right, bottom, left])
    border.flags.writeable = False
    return border


def fit_points(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """The portrait's fitted points: 478 landmarks, ring, border; (510, 2) crop pixels."""
    return np.concatenate([crop_landmarks[:, :2], _ring(crop_landmarks), _border(size)])


def target_fit_points(source_lm: np.ndarray, target_lm: np.ndarray, size: int) -> np.ndarray:
    """The same points for target landmarks: the ring follows the head's 2D similarity motion.

    source_lm, target_lm: (478, 3) crop pixels → (510, 2) crop pixels."""
    flat = lambda a: np.concatenate([a[:, :2], np.zeros((len(a), 1))], 1)  # noqa: E731
    head = fit_similarity(flat(source_lm[L.RIGID]), flat(target_lm[L.RIGID]))
    ring = head.apply(flat(_ring(source_lm)))[:, :2]
    return np.concatenate([target_lm[:, :2], ring, _border(size)])


# Which fitted points are also the spline's radial centres (the control points).
CTRL_INDEX = np.concatenate([L.WARP_POINTS, 478 + np.arange(RING_POINTS + 4 * BORDER_PER_SIDE)])


def normalize(points: np.ndarray, size: int) -> np.ndarray:
    """Crop pixels (continuous, pixel centres at i + 0.5) → [-1, 1] (align_corners=False)."""
    return (points * (2.0 / size) - 1.0).astype(np.float32)


def solve_tps(targets: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Regularized thin-plate spline f with f(targets_i) ≈ sources_i and radial centres at
    targets[CTRL_INDEX]: minimizes the weighted squared misfit over all fitted points plus
    TPS_SMOOTHING × the spline's bending energy, with the side conditions that make that
    energy well defined (Wahba 1990, ch. 2). Smooth where there are no landmarks.

    targets, sources: (510, 2) normalized → (NUM_CTRL + 3, 2) float32: the radial weights,
    then the affine part (1, x, y)."""
    t = targets.astype(np.float64)
    c = t[CTRL_INDEX]
    n = NUM_CTRL
    kernel = _tps_kernel(t, c)  # (510, N); its CTRL_INDEX rows are the centres' own kernel
    # The design matrix [kernel | 1 | x | y] with each row × √weight, in one buffer: its Gram
    # matrix is then one product of the buffer with itself (BLAS's symmetric rank-k update)
    scaled = np.empty((len(t), n + 3))
    scaled[:, :n] = kernel
    scaled[:, n] = 1.0
    scaled[:, n + 1 :] = t
    scaled *= _ROOT_WEIGHTS
    lhs = np.zeros((n + 6, n + 6))
    lhs[: n + 3, : n + 3] = scaled.T @ scaled
    lhs[:n, :n] += TPS_SMOOTHING * kernel[CTRL_INDEX]
    lhs[:n, n + 3 :] = 1.0
    lhs[:n, n + 4 :] = c
    lhs[n + 3 :, :n] = lhs[:n, n + 3 :].T
    rhs = np.zeros((n + 6, 2))
    rhs[: n + 3] = scaled.T @ (sources * _ROOT_WEIGHTS)
    return _solve(lhs, rhs, _coincide(c))[: n + 3].astype(np.float32)


def _coincide(points: np.ndarray, eps: float = 1e-6) -> bool:
    """Do two of the points (normalized) lie on one spot (within eps, and next to each other
    in (x, y) order, as equal points always are)? Rounded landmarks (a stored track, a coarse
    tracker) can put two spline centres there; the system is then singular, and some LAPACK
    builds return a solution of 1e14 instead of raising."""
    ordered = points[np.lexsort((points[:, 1], points[:, 0]))]
    return bool(np.abs(np.diff(ordered, axis=0)).max(axis=1).min() < eps)


def _solve(lhs: np.ndarray, rhs: np.ndarray, singular: bool) -> np.ndarray:
    """lhs⁻¹·rhs; the least-squares (minimum norm) solution when the system is singular,
    whether known beforehand or found by LAPACK (which finds it on some builds, not others)."""
    if not singular:
        try:
            return np.linalg.solve(lhs, rhs)
        except np.linalg.LinAlgError:
            pass
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """U(|a_i − b_j|) = r² log r², (len(a), len(b))."""
    r2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(r2, 0.0, out=r2)
    # OpenCV's log: the same to 2e-15, 5 × sooner than numpy's (a third of the solve's time)
    return r2 * cv2.log(np.maximum(r2, 1e-12))


def mouth_frame(target_lm: np.ndarray, size: int, tongue: bool = True) -> np.ndarray:
    """(10,) float32 describing the target mouth opening for the interior shader.

    Upper-lip point p13 (normalized); the opening axis, perpendicular to the lip line and
    divided by the opening, so v = 0 at the upper lip and 1 at the lower; the across axis
    divided by the half-width, so u = ±1 at the corners; teeth strength; layer strength
    (0 for a closed mouth); teeth depth as a fraction of the opening; tongue strength (0
    without the tongue)."""
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
    gap_iod = L.mouth_gap(target_lm)
    shown = float(np.clip((gap_iod - 0.06) / 0.12, 0.0, 1.0))  # teeth and tongue fade in
    teeth = 0.85 * shown
    teeth_depth = float(np.clip(TEETH_DEPTH_IOD / max(gap_iod, 1e-6), 0.12, 0.4))
    strength = float(np.clip((gap_iod - 0.025) / 0.04, 0.0, 1.0))  # none for a closed mouth
    return np.array([up[0], up[1], *(normal / opening), *(across_unit / half_width), teeth,
                     strength, teeth_depth, shown if tongue else 0.0], np.float32)


# Lid lines of each eye (right, left), upper then lower, from the outer to the inner corner.
LID_LINES = (
    ([33, 246, 161, 160, 159, 158, 157, 173, 133], [33, 7, 163, 144, 145, 153, 154, 155, 133]),
    ([263, 466, 388, 387, 386, 385, 384, 398, 362], [263, 249, 390, 373, 374, 380, 381, 382, 362]),
)
NUM_LID = len(LID_LINES[0][0])
IRIS_CENTRES = (L.RIGHT_IRIS[0], L.LEFT_IRIS[0])


def lids(lm: np.ndarray, size: int) -> np.ndarray:
    """(2, 2, NUM_LID, 2) float32 lid lines, normalized (see LID_LINES)."""
    return normalize(lm[np.array(LID_LINES), :2], size)


def irises(lm: np.ndarray, size: int) -> np.ndarray:
    """(2, 2) float32 iris centres (right, left), normalized."""
    return normalize(lm[list(IRIS_CENTRES), :2], size)


def mouth_box(target_lm: np.ndarray, size: int) -> np.ndarray:
    """(4,) int32 pixel box x0, y0, x1, y1 around the target's inner lips, inside the crop."""
    return _box(target_lm[L.LIPS_INNER, :2], 0.06 * L.iod(target_lm) + 2.0, size)


def fine_boxes(target_lm: np.ndarray, size: int) -> np.ndarray:
    """(3, 4) int32 pixel boxes over the right eye, the left eye and the mouth, where the
    generator evaluates its flow finely (lids and lips move a lot over a few pixels)."""
    iod = L.iod(target_lm)
    regions = [(L.RIGHT_EYE, 0.15), (L.LEFT_EYE, 0.15),
               (L.LIPS_OUTER, 0.15)]
    return np.stack([_box(target_lm[idx, :2], pad * iod + 2.0, size) for idx, pad in regions])


def _box(points: np.ndarray, pad: float, size: int) -> np.ndarray:
    """Integer box around points, padded, clipped to the crop; (0, 0, 1, 1) when outside."""
    (lx, ly), (hx, hy) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    x0, y0 = max(math.floor(lx - pad), 0), max(math.floor(ly - pad), 0)
    x1, y1 = min(math.ceil(hx + pad), size), min(math.ceil(hy + pad), size)
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = 0, 0, 1, 1
    return np.array([x0, y0, x1, y1], np.int32)
