"""The still background behind a moving head, the wall it uncovers, and the head's smooth
outline over it.

The warp's spline moves everything near the face with it, the wall behind included.
StillBackground (RendererConfig.still_background) leaves a shot's background still: wherever
the output shows background (the map samples the shot's background there) the map takes the
pixel itself, so the background does not move with the head. Where the head moved off
background it covered, the pixel itself would show the person left behind (that pixel of the
shot is the person, or within STILL_FRINGE of it: a segmentation's soft edge reads the hair's
fringe as background). There the shot's backdrop shows instead (the background with the
person taken out, made once per shot: backdrop()), fully once the pixel moved STILL_MOVE over
the person's own place, STILL_FRINGE over its fringe.

Before the backdrop, that strip kept the spline's map (the wall beside the head, stretched
across it) and the background bent back to still beyond it over twice the head's shift (a
step there broke every stripe of a flag in two). A head moved 0.5–1 IOD sideways bent the
whole wall with it: man_glasses_orange_wall driving its own first frame waved the cabinet's
edge and the panels' seams across the frame, and Einstein's grain swirled round his head
(lab notes, "The wall a head uncovers").

At the head's own edge, where it moves over the still background, the map steps from the
head to the wall. The person mask is grown by STILL_EDGE for that cut, so it runs through
the shot's background beside the head and the shot's own soft outline, resampled with the
head, draws the edge. Cut at the mask itself, it ran through that outline in whole crop
pixels: a staircase, magnified where the paste-back draws the crop larger (a suit's
shoulder against a flag, in steps of two portrait pixels).

That cut is a step in the map: sampled between two of its pixels (the paste-back's full
detail upsamples the map), it points between the head and the wall, so the texture gives
way along it (Held.cut) and the crop's own pixels are pasted there.
"""

from __future__ import annotations

from functools import cache, cached_property

import cv2
import numpy as np

from streamer.texture import Box

# px at the 512 crop: the segmentation's soft edge, taken with the person: where the head left
# it, the backdrop shows. With 3 px a thin dark line of the hair's old outline stayed on
# man_glasses_orange_wall's cabinet (its own first frame, frame 100), with 1 px (before the
# backdrop) a dotted trace.
STILL_FRINGE = 6.0
STILL_MOVE = 2.0  # px at the 512 crop: a pixel of the person moved this far is uncovered in full
# px at the 512 crop: the head's map reaches this far past the person mask, over the shot's own
# soft outline (Thin-Plate-Spline-Motion-Model_source × man_glasses_office, frame 175: a suit's
# shoulder against a flag stepped in whole crop pixels at 0, is one smooth line at 2)
STILL_EDGE = 2.0
CUT_STEP = 1.0  # px: a step of the held map from which its cut is taken from the crop in full


def _grown(mask: np.ndarray, px: float) -> np.ndarray:
    """A 0/1 (S, S) uint8 mask grown by px at the 512 crop (at least one pixel)."""
    grow = max(1, round(px * mask.shape[0] / 512))
    return cv2.dilate(mask, np.ones((2 * grow + 1,) * 2, np.uint8))


def backdrop(crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The crop (S, S, 3) uint8 with `hole` ((S, S) 0/1 uint8: the person and its fringe)
    filled smoothly from the background around it (cv2.inpaint, Telea's method, at half
    size: 0.03–0.05 s at 512), with the wall's grain over the fill (grain(), 0.015–0.02 s).
    Mirroring the wall beside the hole into it kept its grain but drew every seam near the
    outline again inside it, as a line in the outline's shape (man_glasses_orange_wall's
    cabinet doors; lab notes, "The wall a head uncovers")."""
    size = hole.shape[0]
    if not hole.any() or hole.all():  # nothing to fill, or nothing to fill it from
        return crop.copy()
    half = (size // 2, size // 2)
    small = cv2.resize(crop, half, interpolation=cv2.INTER_AREA)
    small_hole = cv2.dilate(cv2.resize(hole, half, interpolation=cv2.INTER_NEAREST),
                            np.ones((3, 3), np.uint8))
    smooth = cv2.resize(cv2.inpaint(small, small_hole * 255, 3, cv2.INPAINT_TELEA),
                        (size, size), interpolation=cv2.INTER_LINEAR)
    noise = grain(crop, hole)
    if noise is not None:
        x, y, w, h = cv2.boundingRect(hole)
        box = np.s_[y:y + h, x:x + w]
        smooth[box] = np.clip(smooth[box] + noise, 0, 255).round()
    return np.where(hole[:, :, None] > 0, smooth, crop)


# px at the 512 crop: the grain is the wall's detail finer than a Gaussian of this σ (what
# Telea's fill at half size leaves out), measured over the wall within GRAIN_RING of the hole
GRAIN_SIGMA = 2.0
GRAIN_RING = 24.0
GRAIN_SIZES = (0.0, 0.4, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2)  # px at 512: the grain's blur, fitted


def grain(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """(h, w, 3) float32 noise over `hole`'s box (cv2.boundingRect) with the grain of the
    wall round it: its fine detail's spread per channel (from the median deviation, so a
    seam or an edge does not count as grain), how far the channels go together, and how
    alike neighbouring pixels are. The same for the same shot; None where too little wall
    rings the hole to say, the wall is flat, or the hole is a few pixels. A smooth fill in a
    grainy picture read as a pale, streaked patch where a head had moved far (Einstein
    leaning 1 IOD; lab notes, "Grain over the backdrop")."""
    _, _, w, h = cv2.boundingRect(hole)
    if w * h < 64:  # a hole of a few pixels: too few to spread noise over (a pixel's is 0)
        return None
    size = hole.shape[0]
    scale = size / 512
    far = GRAIN_RING * scale
    away = cv2.distanceTransform(1 - hole, cv2.DIST_L2, 3)  # px to the hole
    x, y, near_w, near_h = cv2.boundingRect((away <= far).view(np.uint8))
    near = np.s_[y:y + near_h, x:x + near_w]
    ring = (away[near] > 3 * scale) & (away[near] <= far)
    if ring.sum() < 256:
        return None
    fine = _fine(crop[near].astype(np.float32), GRAIN_SIGMA * scale)
    values = fine[ring]
    sigma = 1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)
    if sigma.max() < 0.25:
        return None
    # how far the channels go together, from the detail clipped at 3 σ; how far each goes,
    # from its median deviation (a seam's many clipped values made the spread 2 × the
    # grain's on a striped wall)
    values = np.clip(values, -(3 * sigma + 1e-3), 3 * sigma + 1e-3)
    spread = np.maximum(sigma, 1e-3)
    together = np.nan_to_num(np.corrcoef(values.T))  # a flat channel: NaN
    np.fill_diagonal(together, 1.0)
    covariance = together * np.outer(spread, spread) + 1e-6 * np.eye(3)
    blur = _grain_blur(_alike(values.mean(axis=1), ring)) * scale
    noise = _white((h, w, 3), seed)
    if blur > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), blur)
    noise = _fine(noise, GRAIN_SIGMA * scale)
    unit = np.maximum(cv2.meanStdDev(noise)[1].ravel(), 1e-6)  # numpy's std: 7 ms at 512
    colour = np.linalg.cholesky(covariance) / unit  # row c: channel c of the grain
    return cv2.transform(noise, colour.astype(np.float32))


def _white(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """float32 white noise, uniform (5 × sooner than normal; blurred and thinned to its fine
    detail, its values spread near normally), the same for the same seed."""
    return np.random.default_rng(seed).integers(0, 256, shape, np.uint8).astype(np.float32)


def _fine(image: np.ndarray, sigma: float) -> np.ndarray:
    """float32 image less its Gaussian blur: its detail finer than sigma."""
    return image - cv2.GaussianBlur(image, (0, 0), sigma)


def _alike(values: np.ndarray, where: np.ndarray) -> float:
    """How alike neighbouring pixels are where both lie in `where` ((H, W) bool; `values`
    (N,): its pixels', row by row): the correlation of each with the next, across and down."""
    at = np.full(where.shape, -1, np.int32)
    at[where] = np.arange(len(values), dtype=np.int32)
    alike = []
    for a, b in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1], np.s_[1:])):
        both = where[a] & where[b]
        x, y = values[at[a][both]], values[at[b][both]]
        alike.append(float(x @ y) / np.sqrt(float(x @ x) * float(y @ y) + 1e-12))
    return float(np.mean(alike))


@cache
def _grain_table() -> tuple[tuple[float, float], ...]:
    """(how alike neighbours are, blur) for noise blurred by each of GRAIN_SIZES (at 512)."""
    white = _white((128, 128), 0)
    everywhere = np.ones((128, 128), bool)
    return tuple((_alike(_fine(cv2.GaussianBlur(white, (0, 0), blur) if blur else white,
                               GRAIN_SIGMA).ravel(), everywhere), blur) for blur in GRAIN_SIZES)


def _grain_blur(alike: float) -> float:
    """The blur (px at 512) whose noise is as alike between neighbours as the wall's grain."""
    return min(_grain_table(), key=lambda row: abs(row[0] - alike))[1]


class StillBackground:
    """Leaves one shot's background still (see the module docstring)."""

    def __init__(self, person: np.ndarray, crop: np.ndarray) -> None:
        """person: (S, S) uint8 where the shot `crop` (S, S, 3) shows the person
        (streamer.segment)."""
        size = person.shape[0]
        shown = (person >= 128).astype(np.uint8)
        self._near = _grown(shown, STILL_FRINGE)
        self._head = _grown(shown, STILL_EDGE) * np.uint8(255)
        # how far a pixel must move to be uncovered in full: STILL_MOVE over the person's own
        # place, STILL_FRINGE over its fringe (a head that moves a pixel or two keeps the
        # shot's own fringe beside it, not a smooth fill)
        self._move = np.where(shown > 0, STILL_MOVE, STILL_FRINGE).astype(np.float32) * (
            size / 512)
        self._crop = crop
        # the crop and the head's mask as one picture: resampled together (hold), one remap
        self._layered = np.dstack([crop, self._head])

    @cached_property
    def backdrop(self) -> np.ndarray:
        """(S, S, 3) uint8: the shot with the person and its fringe filled in (backdrop()),
        made the first time the head uncovers any (0.04–0.08 s at 512 with its grain: a
        portrait of 32 shots is not kept waiting seconds for walls no frame may show)."""
        return backdrop(self._crop, self._near)

    def moving(self, grid: np.ndarray) -> np.ndarray:
        """(S, S) bool: where the sampling map grid (S, S, 2) shows the person (and its
        edge), which moves; the rest is held still."""
        head = cv2.remap(self._head, grid, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        return head >= 128

    def hold(self, grid: np.ndarray, pixels: np.ndarray) -> Held:
        """The sampling map grid (S, S, 2) float32 with the background still (the identity
        map `pixels` where it stays), the crop resampled through it, where the backdrop shows
        over it, and where the held map steps (Held). grid is held in place and becomes
        Held.grid (the renderer's map is the frame's own array: a copy took 0.17 ms at 512)."""
        # the crop and the head's mask resampled in one remap (two took 0.7 ms more at 512):
        # where the map shows the head, the crop as the map has it; elsewhere the crop itself
        both = cv2.remap(self._layered, grid, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        head = cv2.extractChannel(both, 3)  # numpy's strided channel took 0.3 ms at 512
        moving = cv2.threshold(head, 127, 1, cv2.THRESH_BINARY)[1]  # 1 where ≥ 128
        background = cv2.threshold(head, 127, 1, cv2.THRESH_BINARY_INV)[1]
        shift = _shift(grid, pixels)
        cv2.copyTo(pixels, background, grid)
        warped = cv2.cvtColor(both, cv2.COLOR_BGRA2BGR)
        cv2.copyTo(self._crop, background, warped)
        # the strip the head uncovered (at rest the shot's own fringe stays), worked out over
        # the box of what it may cover only: a band round the head
        uncovered = cv2.bitwise_and(background, self._near)
        x, y, w, h = cv2.boundingRect(uncovered)
        box = np.s_[y:y + h, x:x + w]
        cover = uncovered[box] * np.minimum(shift[box] / self._move[box], 1.0)
        return Held(grid, warped, _layer(cover, (x, y)), moving, shift)


def _shift(grid: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(S, S) float32: how far the map grid moves each pixel from `pixels`, smooth: worked out
    on every 4th pixel (taken by OpenCV's nearest resize, which picks pixels 0, 4, 8, ... as
    [::4] does where S is a multiple of 4, 10 × sooner) and resized back."""
    size = grid.shape[1::-1]
    quarter = ((size[0] + 3) // 4, (size[1] + 3) // 4)
    moved = (cv2.resize(pixels, quarter, interpolation=cv2.INTER_NEAREST)
             - cv2.resize(grid, quarter, interpolation=cv2.INTER_NEAREST))
    return cv2.resize(cv2.magnitude(moved[:, :, 0], moved[:, :, 1]), size,
                      interpolation=cv2.INTER_LINEAR)


class Held:
    """StillBackground.hold's map, and its layers: (box, (h, w) float32 0–1 coverage there),
    None where it covers nothing."""

    def __init__(self, grid: np.ndarray, warped: np.ndarray,
                 strip: tuple[Box, np.ndarray] | None, moving: np.ndarray, shift: np.ndarray
                 ) -> None:
        self.grid = grid  # (S, S, 2) float32: the sampling map, the background held still
        self.warped = warped  # (S, S, 3) uint8: the shot's crop resampled through it
        self.strip = strip  # where the backdrop shows: the strip the head uncovered
        self._moving = moving  # (S, S) uint8 0/1: where the map shows the head
        self._shift = shift  # (S, S) float32: how far the map moved each pixel

    @cached_property
    def cut(self) -> tuple[Box, np.ndarray] | None:
        """Where the map steps from the head to the still wall, by how far (whole from
        CUT_STEP): a map sampled between two of its pixels there (the paste-back's full
        detail) samples whatever lies between where they point, the face's outline, drawn
        again as a line beside the head (photo_bw_young_man moved 20 px at 512; lab notes,
        "The paste-back's own pixels"); there the crop's own pixels are taken
        (streamer.texture). Made when asked (0.6 ms at 512): a paste-back from the crop
        does not."""
        edge = cv2.morphologyEx(self._moving, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        return _layer(edge * np.minimum(self._shift / CUT_STEP, 1.0))


def _layer(cover: np.ndarray, at: tuple[int, int] = (0, 0)
           ) -> tuple[Box, np.ndarray] | None:
    """(h, w) float32 coverage, its top-left corner at `at` (x, y) in the crop → (its box,
    the coverage there), None where it is all under 1e-3."""
    if cover.size == 0 or cover.max() <= 1e-3:
        return None
    x, y, w, h = cv2.boundingRect((cover > 1e-3).view(np.uint8))
    return (x + at[0], y + at[1], x + w + at[0], y + h + at[1]), cover[y:y + h, x:x + w]
