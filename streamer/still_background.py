"""The still background behind a moving head, and the head's smooth outline over it.

The warp's spline moves everything near the face with it, the wall behind included.
StillBackground (RendererConfig.still_background) leaves a shot's background still: wherever
the output shows background (the map samples the shot's background there) the map takes the
pixel itself, so the background does not move with the head. Where the head moved off
background it covered, the pixel itself would show the person left behind (that pixel of the
shot is the person, or within STILL_FRINGE of it: a segmentation's soft edge reads the hair's
fringe as background); there the map keeps the spline's (the background beside the head,
stretched), fully once the pixel moved STILL_MOVE. Beyond that strip the background bends
back to still over STILL_BEND × the distance the head moved (a step there, from the strip's
shift to none, broke every stripe of a flag behind a turning head in two).

At the head's own edge, where it moves over the still background, the map steps from the
head to the wall. The person mask is grown by STILL_EDGE for that cut, so it runs through
the shot's background beside the head and the shot's own soft outline, resampled with the
head, draws the edge. Cut at the mask itself, it ran through that outline in whole crop
pixels: a staircase, magnified where the paste-back draws the crop larger (a suit's
shoulder against a flag, in steps of two portrait pixels).
"""

from __future__ import annotations

import cv2
import numpy as np

# px at the 512 crop: the segmentation's soft edge, moved with the head where it left it (with 1
# px a dotted trace of the hair's outline stayed behind; 8 px moved more background than needed:
# K-shot K = 1 face PSNR, man_glasses_office 21.07 / 20.92 / 20.42 dB for 1 / 3 / 8 px)
STILL_FRINGE = 3.0
STILL_MOVE = 2.0  # px at the 512 crop: a pixel moved this far is uncovered in full
STILL_BEND = 2.0  # beyond an uncovered strip, still at this × the shift (over 1: no fold)
# px at the 512 crop: the head's map reaches this far past the person mask, over the shot's own
# soft outline (Thin-Plate-Spline-Motion-Model_source × man_glasses_office, frame 175: a suit's
# shoulder against a flag stepped in whole crop pixels at 0, is one smooth line at 2)
STILL_EDGE = 2.0


def _grown(mask: np.ndarray, px: float) -> np.ndarray:
    """A 0/1 (S, S) uint8 mask grown by px at the 512 crop (at least one pixel)."""
    grow = max(1, round(px * mask.shape[0] / 512))
    return cv2.dilate(mask, np.ones((2 * grow + 1,) * 2, np.uint8))


class StillBackground:
    """Leaves one shot's background still (see the module docstring)."""

    def __init__(self, person: np.ndarray) -> None:
        """person: (S, S) uint8 where the shot shows the person (streamer.segment)."""
        size = person.shape[0]
        shown = (person >= 128).astype(np.uint8)
        self._near = _grown(shown, STILL_FRINGE)
        self._head = _grown(shown, STILL_EDGE)
        self._move = np.float32(STILL_MOVE * size / 512)

    def moving(self, grid: np.ndarray) -> np.ndarray:
        """(S, S) bool: where the sampling map grid (S, S, 2) shows the person (and its
        edge), which moves; the rest is held still."""
        head = cv2.remap(self._head, grid, None, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_REPLICATE)
        return head > 0

    def hold(self, grid: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """The sampling map grid (S, S, 2) float32 with the background still: blended to the
        identity map `pixels` where it stays."""
        background = (~self.moving(grid)).astype(np.uint8)
        weight = background.astype(np.float32)
        uncovered = background & self._near
        if uncovered.any():
            # how far each pixel moved (smooth: worked out on every 4th pixel)
            moved = pixels[::4, ::4] - grid[::4, ::4]
            shift = cv2.magnitude(moved[:, :, 0], moved[:, :, 1])
            full = grid.shape[1::-1]
            gone = cv2.resize(np.minimum(shift / self._move, 1.0), full,
                              interpolation=cv2.INTER_LINEAR)
            weight -= uncovered * gone  # at rest the shot's own fringe stays
            # Beyond the strip the map bends back to still instead of stepping there (a step
            # breaks every stripe of a flag behind the head): still at STILL_BEND × the shift
            # from the strip (distances on every 2nd pixel, less the one cell they round up).
            half = uncovered[::2, ::2]
            away = cv2.distanceTransform(1 - half, cv2.DIST_L2, 3) * 2.0 - 2.0
            reach = STILL_BEND * cv2.resize(shift, half.shape[::-1], interpolation=cv2.INTER_LINEAR)
            bend = np.clip(away / np.maximum(reach, 1.0), 0.0, 1.0)
            bend = cv2.resize(bend, full, interpolation=cv2.INTER_LINEAR)
            # (the strip keeps its own weight; the head's is 0 whatever the bend)
            weight = cv2.min(weight, cv2.max(bend, uncovered.astype(np.float32)))
        return cv2.blendLinear(grid, pixels, 1.0 - weight, weight)
