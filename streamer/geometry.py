"""Rigid geometry of faces: similarity fits (Umeyama) and face-aligned frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer import landmarks as L


@dataclass(frozen=True)
class Similarity:
    """x ↦ centre_to + scale · rotation · (x − centre_from), on (N, 3) row vectors."""

    rotation: np.ndarray  # (3, 3), det +1
    scale: float
    centre_from: np.ndarray  # (3,)
    centre_to: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.centre_to + self.scale * (points - self.centre_from) @ self.rotation.T

    def invert(self, points: np.ndarray) -> np.ndarray:
        return self.centre_from + (points - self.centre_to) @ self.rotation / self.scale


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity with dst ≈ s·R·(src − c_src) + c_dst (Umeyama 1991).

    src, dst: (N, 3) corresponding points."""
    c_src, c_dst = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - c_src, dst - c_dst
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    fix = np.diag([1.0, 1.0, d])
    rotation = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / max((a**2).sum(), 1e-12))
    return Similarity(rotation, scale, c_src, c_dst)


def fit_head_pose(neutral: np.ndarray, current: np.ndarray) -> Similarity:
    """Head motion from a neutral frame to the current one, from skull-rigid points only.

    neutral, current: (478, 3) landmarks in pixels."""
    return fit_similarity(neutral[L.RIGID].astype(np.float64), current[L.RIGID].astype(np.float64))


@dataclass(frozen=True)
class FaceFrame:
    """A face-aligned coordinate frame: x from the right eye to the left, y down the face
    (forehead → chin), z into the screen; one unit = the face's inter-ocular distance."""

    axes: np.ndarray  # (3, 3), columns are the x, y, z axes in image coordinates
    origin: np.ndarray  # (3,)
    unit: float  # IOD in pixels

    def to_face(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) image coordinates → face-aligned coordinates."""
        return (points - self.origin) @ self.axes / self.unit

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return self.origin + self.unit * points @ self.axes.T

    def vectors_to_face(self, vectors: np.ndarray) -> np.ndarray:
        return vectors @ self.axes / self.unit

    def vectors_to_image(self, vectors: np.ndarray) -> np.ndarray:
        return self.unit * vectors @ self.axes.T


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """landmarks: (478, 3) pixels → the face's own frame."""
    lm = landmarks.astype(np.float64)
    x = lm[L.EYE_OUTER_L] - lm[L.EYE_OUTER_R]
    x /= np.linalg.norm(x)
    y = lm[152] - lm[10]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    axes = np.stack([x, y, z], axis=1)
    unit = float(np.linalg.norm(lm[L.EYE_OUTER_L] - lm[L.EYE_OUTER_R]))
    return FaceFrame(axes, lm[L.RIGID].mean(axis=0), unit)


def rotation_to_euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of R = Ry(yaw)·Rx(pitch)·Rz(roll), image axes (y down)."""
    r = rotation
    pitch = np.degrees(np.arcsin(np.clip(-r[1, 2], -1.0, 1.0)))
    yaw = np.degrees(np.arctan2(r[0, 2], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[1, 1]))
    return float(yaw), float(pitch), float(roll)


def euler_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Ry(yaw)·Rx(pitch)·Rz(roll), degrees, image axes (y down): the inverse of
    rotation_to_euler."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def orthonormalize(matrix: np.ndarray) -> np.ndarray:
    """Nearest rotation to a 3×3 matrix (used after blending rotations)."""
    u, _, vt = np.linalg.svd(matrix)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt
