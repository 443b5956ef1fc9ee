"""The "plain warp" baseline: move the portrait's pixels with the landmarks, nothing learned.

The 478 landmarks of the portrait (frame 0) and of frame t, plus a ring of points around
the face that follows the face's mean shift (so hair and neck move along with the head)
and fixed image-border points (so the background stays put), are triangulated with
Delaunay on the *target* points. Every output pixel lies in one target triangle; its
barycentric coordinates there give the matching point in the source triangle, and
cv2.remap samples the portrait there bilinearly. Nothing fills the mouth interior: an
opening mouth stretches the lips, which is exactly the weakness a learned model must beat.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

MESH_POINTS = 468  # mesh proper; the iris points move with it and are used too
RING_POINTS = 20  # points on the ring around the face
RING_SCALE = 1.6  # ring radius in units of the face radius (max mesh-point distance)


def _border_points(width: int, height: int) -> np.ndarray:
    """(8, 2) image corners and edge midpoints, pixels; they never move."""
    xs = (0.0, (width - 1) / 2.0, width - 1.0)
    ys = (0.0, (height - 1) / 2.0, height - 1.0)
    return np.array([(x, y) for y in ys for x in xs if (x, y) != (xs[1], ys[1])])


def _ring(lm_xy: np.ndarray) -> np.ndarray:
    """(RING_POINTS, 2) points at RING_SCALE × the face radius around the mesh centroid.

    The radius is the largest mesh-point distance from the centroid, so the ring never
    crosses the mesh however elongated the face is.
    """
    mesh = lm_xy[:MESH_POINTS]
    centre = mesh.mean(axis=0)
    radius = np.linalg.norm(mesh - centre, axis=1).max() * RING_SCALE
    angles = np.linspace(0.0, 2.0 * np.pi, RING_POINTS, endpoint=False)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


class PlainWarper:
    """Warps one portrait to many target landmark sets; caches what depends on the portrait.

    source_bgr: (H, W, 3) uint8 portrait.
    source_lm: (478, 3) float32 pixels, the portrait's landmarks.
    """

    def __init__(self, source_bgr: np.ndarray, source_lm: np.ndarray) -> None:
        h, w = source_bgr.shape[:2]
        self._source = source_bgr
        self._lm_xy = source_lm[:, :2].astype(np.float64)
        self._ring = _ring(self._lm_xy)
        self._border = _border_points(w, h)
        ys, xs = np.mgrid[0:h, 0:w]
        # (H*W, 2) pixel centres in x, y order, the points every warp looks up.
        self._pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
        self._xs = self._pixels[:, 0].astype(np.float32)
        self._ys = self._pixels[:, 1].astype(np.float32)
        self._shape = (h, w)

    def _source_points(self) -> np.ndarray:
        return np.vstack([self._lm_xy, self._ring, self._border])

    def _target_points(self, target_lm: np.ndarray) -> np.ndarray:
        target_xy = target_lm[:, :2].astype(np.float64)
        shift = (target_xy[:MESH_POINTS] - self._lm_xy[:MESH_POINTS]).mean(axis=0)
        return np.vstack([target_xy, self._ring + shift, self._border])

    def warp(self, target_lm: np.ndarray) -> np.ndarray:
        """target_lm: (478, 3) float32 pixels → (H, W, 3) uint8 warped portrait."""
        tri = Delaunay(self._target_points(target_lm))
        coef = _source_affines(tri, self._source_points())
        # find_simplex gives -1 outside every triangle, which picks coef's last row: identity.
        # float32 from here on: ~1e-4 px error at 2048 px, half the memory traffic.
        per_pixel = coef.astype(np.float32)[tri.find_simplex(self._pixels)]  # (H*W, 6)
        x, y = self._xs, self._ys
        h, w = self._shape
        map_x = (per_pixel[:, 0] * x + per_pixel[:, 1] * y + per_pixel[:, 2]).reshape(h, w)
        map_y = (per_pixel[:, 3] * x + per_pixel[:, 4] * y + per_pixel[:, 5]).reshape(h, w)
        return cv2.remap(
            self._source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def _source_affines(tri: Delaunay, source: np.ndarray) -> np.ndarray:
    """(S + 1, 6) per target triangle, the affine map target pixel → source pixel.

    Row s holds (a, b, c, d, e, f) with source = (a x + b y + c, d x + e y + f): the
    barycentric mapping folded into one affine per triangle. With target corners t0..t2,
    barycentric (b0, b1) = E⁻¹ (p − t2) for E = [t0 − t2, t1 − t2], and the source point
    is s2 + b0 (s0 − s2) + b1 (s1 − s2), so A = [s0 − s2, s1 − s2] E⁻¹ and the offset is
    s2 − A t2. (scipy's tri.transform gives E⁻¹ too, but takes ~50 ms per call.)
    Degenerate (flat) triangles and the extra last row are the identity.
    source: (N, 2) source points in the order of tri.points.
    """
    tc = tri.points[tri.simplices]  # (S, 3, 2) target corners
    sc = source[tri.simplices]  # (S, 3, 2) source corners
    e = np.stack([tc[:, 0] - tc[:, 2], tc[:, 1] - tc[:, 2]], axis=2)  # columns are edges
    d = np.stack([sc[:, 0] - sc[:, 2], sc[:, 1] - sc[:, 2]], axis=2)
    det = e[:, 0, 0] * e[:, 1, 1] - e[:, 0, 1] * e[:, 1, 0]
    flat = np.abs(det) < 1e-9
    det = np.where(flat, 1.0, det)
    e_inv = (
        np.stack(
            [np.stack([e[:, 1, 1], -e[:, 0, 1]], 1), np.stack([-e[:, 1, 0], e[:, 0, 0]], 1)], 1
        )
        / det[:, None, None]
    )
    a = d @ e_inv  # (S, 2, 2)
    offset = sc[:, 2] - np.einsum("sij,sj->si", a, tc[:, 2])
    coef = np.concatenate([a[:, 0], offset[:, :1], a[:, 1], offset[:, 1:]], axis=1)
    identity = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    coef[flat] = identity
    return np.vstack([coef, identity])


def plain_warp(source_bgr: np.ndarray, source_lm: np.ndarray, target_lm: np.ndarray) -> np.ndarray:
    """Warp the portrait so its landmarks land on target_lm.

    source_bgr: (H, W, 3) uint8; source_lm, target_lm: (478, 3) float32 pixels in the same
    image frame → (H, W, 3) uint8.
    """
    return PlainWarper(source_bgr, source_lm).warp(target_lm)
