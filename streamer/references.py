"""Which of a portrait's K shots the warp renders from, frame by frame.

With one shot, every frame is warped from it, and whatever the shot does not show (an open
mouth's teeth, the far cheek of a turned head) has to be made up. With K shots of one face
from one camera (`headcast enroll --from-video clip.mp4 --shots K`, or K same-size photos),
the warp starts from the shot whose landmarks are nearest the frame's target landmarks, so
it only has to move the face by what is left: more shots, a nearer start, a closer likeness.

Nearest = least mean landmark distance in the crop, in units of the target's inter-ocular
distance (the same measure the warp has to cover: position, pose and expression at once).
The choice sticks until another shot is clearly nearer (HYSTERESIS), so a face near the
middle of two shots does not flicker between them, and a switch cross-fades from the old shot
to the new one over FADE_FRAMES frames: two shots of a handheld clip differ in background and
light, and a cut between them shows (a mean jump of 10 grey levels over the frame where
consecutive frames differ by 1).

The mouth and the eyes each pick their own shot too (FEATURES): the one whose feature has
the nearest shape (its landmarks centred on their own mean, so where the face is does not
count), with the same hysteresis and cross-fades, and the renderer lays that shot's warp over
the feature's patch (the outer lips, the eyes' contours, grown and feathered). The shot
nearest in the whole face starts the hair, ears and background nearest, but often from a
mouth shaped otherwise, or eyes open where the frame blinks. A feature leaves the whole
face's shot only for one nearer by FEATURE_SWITCH IOD: below that two mouths are alike to
the warp, and another shot only brings its own light (and a second warp: 9 ms at the 512
crop). K-shot protocol, training-free, K = 8 / 32 (README, "Few-shot model"): the mouth box
on open mouths 25.31 → 25.71 / 25.33 → 26.28 dB with the mouth's own shot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.texture import Box

HYSTERESIS = 0.8  # switch only when another shot is nearer than this × the current one's
FADE_FRAMES = 6  # frames over which a switch blends from the old shot to the new (0.2 s)
# A feature takes another shot than the whole face's only when that shot's feature is nearer
# by more than this (IOD, mean over the feature's landmarks)
FEATURE_SWITCH = 0.01
_MOUTH = np.array(L.MOUTH_REGION)
_EYES = (np.array(L.RIGHT_EYE + L.RIGHT_IRIS), np.array(L.LEFT_EYE + L.LEFT_IRIS))
Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (target, shots) → (K,)
Patch = tuple[Box, np.ndarray]  # (box, coverage (h, w) float32 0–1 over it)


def shot_distances(target: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """Mean 2D landmark distance / target IOD. target (478, ≥2), shots (K, 478, ≥2) in the
    same pixels → (K,) float64."""
    diff = shots[:, :, :2].astype(np.float64) - target[None, :, :2].astype(np.float64)
    return np.linalg.norm(diff, axis=2).mean(axis=1) / max(L.iod(target), 1e-6)


def _shape_distances(target: np.ndarray, shots: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mean 2D distance of the landmarks `index`, each set centred on its own mean, / target
    IOD: how alike the shapes are wherever the faces are → (K,) float64."""
    t = target[index, :2].astype(np.float64)
    s = shots[:, index, :2].astype(np.float64)
    diff = (s - s.mean(axis=1, keepdims=True)) - (t - t.mean(axis=0))[None]
    return np.linalg.norm(diff, axis=2).mean(axis=1) / max(L.iod(target), 1e-6)


def mouth_distances(target: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """How alike the mouths (lips and jaw) are in shape. target (478, ≥2), shots (K, 478, ≥2)
    → (K,) float64, IOD."""
    return _shape_distances(target, shots, _MOUTH)


def eye_distances(target: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """How alike the eyes (lids and iris, each eye on its own) are in shape: a blink, a glance.
    target (478, ≥2), shots (K, 478, ≥2) → (K,) float64, IOD."""
    return sum(_shape_distances(target, shots, eye) for eye in _EYES) / len(_EYES)


def region_patch(landmarks: np.ndarray, size: int, polygons: list[list[int]], margin: float,
                 feather: float) -> Patch | None:
    """The landmark polygons filled, grown by `margin` IOD, edge blurred by `feather` IOD
    (Gaussian σ), drawn over their own box only; None when they are outside the (size, size)
    crop. landmarks: (478, ≥2) crop pixels."""
    unit = L.iod(landmarks)
    grow = int(round(margin * unit))
    sigma = max(feather * unit, 0.5)
    points = [np.round(landmarks[p, :2]).astype(np.int32) for p in polygons]
    every = np.concatenate(points)
    reach = grow + int(np.ceil(4 * sigma)) + 1
    x0, y0 = (int(v) for v in np.maximum(every.min(axis=0) - reach, 0))
    x1, y1 = (int(v) for v in np.minimum(every.max(axis=0) + reach + 1, size))
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [p - [x0, y0] for p in points], 255)
    mask = cv2.dilate(mask, np.ones((2 * grow + 1,) * 2, np.uint8)).astype(np.float32)
    alpha = cv2.GaussianBlur(mask / 255.0, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return (x0, y0, x1, y1), alpha


def lips_patch(landmarks: np.ndarray, size: int, margin: float, feather: float
               ) -> Patch | None:
    """The outer lips grown by `margin` IOD and feathered (region_patch)."""
    return region_patch(landmarks, size, [L.LIPS_OUTER], margin, feather)


@dataclass(frozen=True)
class Feature:
    """A part of the face that starts from its own nearest shot."""

    name: str
    distance: Distance
    polygons: tuple[tuple[int, ...], ...]  # landmark polygons its patch covers …
    margin: float  # … grown by this × IOD …
    feather: float  # … and blurred by this × IOD (Gaussian σ)

    def patch(self, landmarks: np.ndarray, size: int) -> Patch | None:
        return region_patch(landmarks, size, [list(p) for p in self.polygons], self.margin,
                            self.feather)


# Margins: the mouth's as the neural generator's region (streamer.neural.MOUTH_MARGIN); the
# eyes' take the lids and a little of the brow-side skin, not the brows.
FEATURES = (
    Feature("mouth", mouth_distances, (tuple(L.LIPS_OUTER),), 0.15, 0.05),
    Feature("eyes", eye_distances, (tuple(L.RIGHT_EYE), tuple(L.LEFT_EYE)), 0.10, 0.04),
)


class ReferencePicker:
    """Picks the shots of each frame, with hysteresis and cross-fades. Call pick() from one
    thread (the renderer's)."""

    def __init__(self, shots: np.ndarray, distance: Distance = shot_distances) -> None:
        """shots: (K, 478, ≥2) landmarks in crop pixels, K ≥ 1; shot 0 is picked first.
        distance(target, shots) → (K,): how far each shot is (shot_distances: the whole
        face; a Feature's: that feature's shape)."""
        if len(shots) < 1:
            raise ValueError("a reference picker needs at least one shot")
        self._shots = np.asarray(shots)
        self._distance = distance
        self.current = 0
        self._fading_from: int | None = None  # the shot a cross-fade leaves
        self._faded = 0  # frames of the cross-fade shown so far

    def pick(self, target: np.ndarray) -> list[tuple[int, float]]:
        """(shot, weight) pairs to warp from and blend for target landmarks (478, ≥2) crop
        pixels: one shot with weight 1, or during a cross-fade the new shot and the old."""
        if len(self._shots) > 1:
            dist = self._distance(target, self._shots)
            best = int(np.argmin(dist))
            if dist[best] < HYSTERESIS * dist[self.current]:
                self._fading_from, self._faded = self.current, 0
                self.current = best
        if self._fading_from is None:
            return [(self.current, 1.0)]
        self._faded += 1
        if self._faded >= FADE_FRAMES:
            self._fading_from = None
            return [(self.current, 1.0)]
        w = self._faded / FADE_FRAMES
        return [(self.current, w), (self._fading_from, 1.0 - w)]
