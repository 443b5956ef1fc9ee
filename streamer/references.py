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
"""

from __future__ import annotations

import numpy as np

from streamer import landmarks as L

HYSTERESIS = 0.8  # switch only when another shot is nearer than this × the current one's
FADE_FRAMES = 6  # frames over which a switch blends from the old shot to the new (0.2 s)


def shot_distances(target: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """Mean 2D landmark distance / target IOD. target (478, ≥2), shots (K, 478, ≥2) in the
    same pixels → (K,) float64."""
    diff = shots[:, :, :2].astype(np.float64) - target[None, :, :2].astype(np.float64)
    return np.linalg.norm(diff, axis=2).mean(axis=1) / max(L.iod(target), 1e-6)


class ReferencePicker:
    """Picks the shots of each frame, with hysteresis and cross-fades. Call pick() from one
    thread (the renderer's)."""

    def __init__(self, shots: np.ndarray) -> None:
        """shots: (K, 478, ≥2) landmarks in crop pixels, K ≥ 1; shot 0 is picked first."""
        if len(shots) < 1:
            raise ValueError("a reference picker needs at least one shot")
        self._shots = np.asarray(shots)
        self.current = 0
        self._fading_from: int | None = None  # the shot a cross-fade leaves
        self._faded = 0  # frames of the cross-fade shown so far

    def pick(self, target: np.ndarray) -> list[tuple[int, float]]:
        """(shot, weight) pairs to warp from and blend for target landmarks (478, ≥2) crop
        pixels: one shot with weight 1, or during a cross-fade the new shot and the old."""
        if len(self._shots) > 1:
            dist = shot_distances(target, self._shots)
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
