"""Quality metrics for self- and cross-reenactment: pure numpy/OpenCV, no tracking inside.

Every function takes landmark arrays that a tracker already produced:
landmarks: (478, 3) float32, pixels — MediaPipe face mesh with iris; x, y in pixels,
z in pixels scaled like x. A frame where no face was found is ``None``; such frames are
counted (face-found rate) and left out of every landmark metric.

Conventions
- A *box* is ``(x0, y0, x1, y1)`` in integer pixels, half-open (``image[y0:y1, x0:x1]``).
- Head rotation is yaw/pitch/roll in degrees, intrinsic ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``
  in image axes (x right, y down, z away from the camera — right-handed): yaw turns about
  the image y axis, pitch about x, roll about z. Each sequence is measured relative to its
  own reference frame (frame 0, or the first frame where both sequences have a face).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MESH_POINTS = 468  # the face mesh proper; 468..477 are the two irises
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # IOD endpoints (subject's right/left eye)
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
# (top lid, bottom lid, corner a, corner b) for each eye.
EYES = ((159, 145, 33, 133), (386, 374, 263, 362))
MOUTH_POINTS = (61, 291, 0, 17, 13, 14, 78, 308, 37, 267, 84, 314)
FACE_PAD_IOD = 0.1
MOUTH_PAD_IOD = 0.25
# A perfect frame has infinite PSNR; cap it so one identical frame cannot make a mean inf.
PSNR_CAP_DB = 100.0
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2

Box = tuple[int, int, int, int]
MaybeLandmarks = np.ndarray | None


# ---------------------------------------------------------------- per-frame landmark scalars


def iod(lm: np.ndarray) -> float:
    """Inter-ocular distance: 2D distance between the outer eye corners 33 and 263, pixels."""
    return float(np.linalg.norm(lm[RIGHT_EYE_OUTER, :2] - lm[LEFT_EYE_OUTER, :2]))


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap |p13 − p14| divided by IOD (dimensionless)."""
    gap = np.linalg.norm(lm[UPPER_LIP_INNER, :2] - lm[LOWER_LIP_INNER, :2])
    return float(gap / iod(lm))


def eye_openness(lm: np.ndarray) -> float:
    """Mean over both eyes of lid gap / eye width (dimensionless)."""
    ratios = []
    for top, bottom, corner_a, corner_b in EYES:
        gap = np.linalg.norm(lm[top, :2] - lm[bottom, :2])
        width = np.linalg.norm(lm[corner_a, :2] - lm[corner_b, :2])
        ratios.append(gap / width)
    return float(np.mean(ratios))


def scalar_series(lms: Sequence[MaybeLandmarks], fn: Callable[[np.ndarray], float]) -> np.ndarray:
    """fn applied per frame → (T,) float64, NaN where the face is missing."""
    return np.array([np.nan if lm is None else fn(lm) for lm in lms], dtype=np.float64)


def face_found_rate(lms: Sequence[MaybeLandmarks]) -> float:
    """Fraction of frames (0..1) with a face; 0 for an empty sequence."""
    if len(lms) == 0:
        return 0.0
    return sum(lm is not None for lm in lms) / len(lms)


# ---------------------------------------------------------------- series statistics


def _valid_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def pearson_r(driver: np.ndarray, output: np.ndarray, min_std: float = 0.0) -> float:
    """Pearson correlation over frames where both series are finite; NaN if undefined.

    driver, output: (T,) series, NaN marks a missing face.
    min_std: a driver whose std is not above this counts as still; r is then NaN, since
    correlating with tracker jitter says nothing about the avatar.
    """
    d, o = _valid_pairs(driver, output)
    if d.size < 2 or d.std() <= min_std or o.std() == 0:
        return float("nan")
    return float(np.corrcoef(d, o)[0, 1])


def amplitude_ratio(driver: np.ndarray, output: np.ndarray, min_std: float = 0.0) -> float:
    """std(output) / std(driver) over frames where both are finite; NaN if undefined.

    Tells whether the avatar's motion is as large as the driver's (1 = same amplitude),
    which the correlation alone cannot see. min_std: as in pearson_r.
    """
    d, o = _valid_pairs(driver, output)
    if d.size < 2 or d.std() <= min_std:
        return float("nan")
    return float(o.std() / d.std())


# ---------------------------------------------------------------- head rotation


def kabsch_rotation(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Best rotation R (3, 3) with R @ ref_i ≈ cur_i after centring and unit-norm scaling.

    ref, cur: (N, 3) point clouds in corresponding order. Scale is removed so that a face
    moving towards the camera does not read as rotation; reflections are excluded.
    """
    a = ref - ref.mean(axis=0)
    b = cur - cur.mean(axis=0)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def euler_yaw_pitch_roll(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation → (3,) degrees [yaw, pitch, roll] for R = Ry(yaw) Rx(pitch) Rz(roll)."""
    pitch = np.arcsin(np.clip(-rot[1, 2], -1.0, 1.0))
    yaw = np.arctan2(rot[0, 2], rot[2, 2])
    roll = np.arctan2(rot[1, 0], rot[1, 1])
    return np.degrees(np.array([yaw, pitch, roll]))


def head_rotation(ref_lm: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(3,) degrees [yaw, pitch, roll] of lm relative to ref_lm, from the 468 mesh points."""
    rot = kabsch_rotation(
        ref_lm[:MESH_POINTS].astype(np.float64), lm[:MESH_POINTS].astype(np.float64)
    )
    return euler_yaw_pitch_roll(rot)


def _reference_index(driver: Sequence[MaybeLandmarks], output: Sequence[MaybeLandmarks]) -> int:
    """Frame 0, or the first frame where both have a face; -1 when there is none."""
    for t, (d, o) in enumerate(zip(driver, output, strict=True)):
        if d is not None and o is not None:
            return t
    return -1


def pose_error(driver: Sequence[MaybeLandmarks], output: Sequence[MaybeLandmarks]) -> float:
    """Mean |driver − output| head rotation, degrees, over frames and yaw/pitch/roll.

    Each sequence's rotation is taken relative to its own reference frame (frame 0, or the
    first frame where both have a face); the reference frame itself (error 0 by construction)
    and frames missing a face in either sequence are left out. NaN if nothing is left.
    """
    ref = _reference_index(driver, output)
    if ref < 0:
        return float("nan")
    errors = []
    for t in range(ref + 1, len(driver)):
        d, o = driver[t], output[t]
        if d is None or o is None:
            continue
        diff = head_rotation(driver[ref], d) - head_rotation(output[ref], o)
        errors.append(np.abs(diff))
    return float(np.mean(errors)) if errors else float("nan")


# ---------------------------------------------------------------- keypoint distance


def keypoint_distance(driver_lm: np.ndarray, output_lm: np.ndarray) -> float:
    """Mean 2D landmark distance over the 478 points in units of the driver's IOD × 100."""
    dist = np.linalg.norm(output_lm[:, :2] - driver_lm[:, :2], axis=1)
    return float(dist.mean() / iod(driver_lm) * 100.0)


def akd(driver: Sequence[MaybeLandmarks], output: Sequence[MaybeLandmarks]) -> float:
    """Average keypoint distance over frames t ≥ 1 where both have a face; NaN if none.

    Frame 0 is skipped because in self-reenactment it is the portrait itself.
    """
    values = [
        keypoint_distance(d, o)
        for d, o in zip(driver[1:], output[1:], strict=True)
        if d is not None and o is not None
    ]
    return float(np.mean(values)) if values else float("nan")


# ---------------------------------------------------------------- image regions and metrics


def _padded_box(points: np.ndarray, pad: float, shape: tuple[int, ...]) -> Box:
    h, w = shape[:2]
    x0, y0 = np.floor(points[:, :2].min(axis=0) - pad)
    x1, y1 = np.ceil(points[:, :2].max(axis=0) + pad) + 1
    return (
        int(np.clip(x0, 0, w)),
        int(np.clip(y0, 0, h)),
        int(np.clip(x1, 0, w)),
        int(np.clip(y1, 0, h)),
    )


def face_box(lm: np.ndarray, shape: tuple[int, ...]) -> Box:
    """Box around the 468 mesh points padded by 0.1 IOD, clipped to an image of `shape`."""
    return _padded_box(lm[:MESH_POINTS], FACE_PAD_IOD * iod(lm), shape)


def mouth_box(lm: np.ndarray, shape: tuple[int, ...]) -> Box:
    """Box around the lip landmarks padded by 0.25 IOD, clipped to an image of `shape`."""
    return _padded_box(lm[list(MOUTH_POINTS)], MOUTH_PAD_IOD * iod(lm), shape)


def _box_is_empty(box: Box) -> bool:
    return box[2] <= box[0] or box[3] <= box[1]


def psnr(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    """PSNR in dB of 8-bit colour images a, b (H, W, 3) uint8 over the box; inf if equal."""
    if _box_is_empty(box):
        return float("nan")
    x0, y0, x1, y1 = box
    diff = a[y0:y1, x0:x1].astype(np.float64) - b[y0:y1, x0:x1].astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float64)
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_BGR2GRAY).astype(np.float64)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map (H, W) float64 of two grey images (Wang et al. 2004, eq. 13).

    Gaussian window 11×11, σ 1.5, C1 = (0.01·255)², C2 = (0.03·255)²; borders reflected
    (OpenCV's default BORDER_REFLECT_101).
    """

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_a * mu_a + mu_b * mu_b + SSIM_C1) * (var_a + var_b + SSIM_C2)
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, box: Box) -> float:
    """Mean SSIM over the box of images a, b (H, W, 3) uint8 BGR, compared in grey.

    The map is computed on a crop padded by the window radius (5 px) on each side, clipped
    to the image, which gives exactly the values the whole-image map has inside the box
    (at the image edge both reflect the border the same way) at a fraction of the cost.
    """
    if _box_is_empty(box):
        return float("nan")
    h, w = a.shape[:2]
    r = SSIM_WINDOW // 2
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0 - r, 0), max(y0 - r, 0), min(x1 + r, w), min(y1 + r, h)
    smap = ssim_map(_grey(a[cy0:cy1, cx0:cx1]), _grey(b[cy0:cy1, cx0:cx1]))
    return float(smap[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0].mean())


@dataclass(frozen=True)
class ImageScores:
    """Per-frame image metrics of one output frame against its driver frame."""

    face_psnr: float  # dB, colour, over the face box
    face_ssim: float  # grey SSIM, over the face box
    mouth_psnr: float  # dB, colour, over the mouth box
    mouth_ssim: float  # grey SSIM, over the mouth box


def image_scores(driver: np.ndarray, output: np.ndarray, driver_lm: np.ndarray) -> ImageScores:
    """Compare output (H, W, 3) uint8 with driver (H, W, 3) uint8 in the driver's regions."""
    if driver.shape != output.shape:
        raise ValueError(f"driver {driver.shape} and output {output.shape} differ in size")
    fbox = face_box(driver_lm, driver.shape)
    mbox = mouth_box(driver_lm, driver.shape)
    return ImageScores(
        face_psnr=psnr(driver, output, fbox),
        face_ssim=ssim(driver, output, fbox),
        mouth_psnr=psnr(driver, output, mbox),
        mouth_ssim=ssim(driver, output, mbox),
    )


def mean_psnr(values: Sequence[float]) -> float:
    """Mean of per-frame PSNRs with each capped at PSNR_CAP_DB; NaNs ignored."""
    arr = np.minimum(np.asarray(values, np.float64), PSNR_CAP_DB)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def mean_finite(values: Sequence[float]) -> float:
    """Mean ignoring NaNs; NaN when nothing is left."""
    arr = np.asarray(values, np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")
