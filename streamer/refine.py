"""Closed-loop target refinement for offline jobs (`headcast animate`).

A 2D warp of one picture cannot show a turned head exactly: the face's shading and outline
still say "frame 0", so the face a tracker (or a person) sees in the output sits off the
landmarks the renderer was asked for, by 1.4 % of the eye distance on average in
self-reenactment. Offline the whole target track is known, so animate renders it once,
tracks its own output, and moves each frame's targets against what it saw:

    target' = target − gain · smooth(seen − target − rest offset)

where the rest offset is what the tracker reports for the portrait at rest (its stored
landmarks come from image mode, the output is tracked in video mode; the offset is their
difference, not an error of the render). The residual is smoothed over time (the tracker
jitters by ~0.2 % IOD per frame), capped per point, and never closes a gap: lids and lips keep
at least the gap the motion transfer asked for when it closes them, and a shut lid stays
shut. Where the target opens the mouth past the portrait's own, the renderer draws the
mouth's inside, and MediaPipe misreads drawn mouths (on photo_bw_young_man a dark cavity
flips between "open" and "closed lips" with a shift of a few pixels): there the mouth and
the jaw take one common shift, and their shape stays what the motion transfer asked for.

Measured (benchmarks.quality, training-free renderer), six self-reenactment clips, AKD /
face PSNR over static / mouth SSIM over static: unrefined 1.33 / +2.24 dB / +0.104; refined
0.92 / +2.59 dB / +0.109. The pixels come closer to the real frames too, so the face moved
where the driver's was, not only where a tracker reads it. Correcting drawn mouths point by
point as well gives 0.89 / +2.61 / +0.111 but costs cross-reenactment its lip sync (mouth
r, 48 pairs: 0.948 → 0.908 mean, worst 0.746 → 0.483). A second pass lowers AKD further
(0.82) but not the pixels' error (+2.57 dB, +0.110): past one pass it fits the tracker.
Re-measured once the drawn mouth got its tongue (full detail where auto takes it): held
0.89 / +2.87 dB / +0.109, point by point 0.86 / +2.85 / +0.111, and point by point still
costs lip sync (12 pairs of the six most misread portraits: 10 → 7 with mouth r ≥ 0.9;
einstein × woman_long_expressive 0.93 → 0.83).

So the first render decides (hold="auto"): it shows how well the tracker reads this
portrait's drawn mouths (misread_gap: mean |seen − asked| opening over the frames whose
mouth is drawn; 0.003–0.021 IOD on the six self-reenactment clips, 0.026–0.056 on the cross
pairs point by point hurt most). Where it reads them true, on enough frames, the lips'
heights are corrected point by point and the mouth moves across as one, keeping the width
asked (corrected freely, a round "O" came out a slit); elsewhere mouth and jaw stay held.
Six clips: 0.87 / +2.85 dB / +0.111; cross-reenactment mouth r ≥ 0.9 on 42 of 48 pairs as
held (README, "Quality").

The tracker misplaces mouths sideways too (a closed mouth pushed to one side, read short of
where it was drawn), so the mouth's points do not slide across against each other: across,
the mouth takes its points' mean correction in every frame, open or closed (holds "drawn"
and "width", one of which "auto" takes).

Where the mouth stays held, the first render still says how wide the tracker reads this
portrait's drawn openings, as one number over the clip (opening_gain: the slope of seen
over asked opening past the rest), which its frame-to-frame flips do not move much. Read
outside 1 ± 0.15, the opening takes one factor (0.71–1.4) that brings the read to the
band's edge.

Cross-reenactment by man_glasses_office (he talks with his lips nearly closed), 24 pairs,
before → with both: mouth r ≥ 0.9 on 19 → 22 (Thin-Plate-Spline-Motion-Model_source 0.831 →
0.905 and dreamtalk_menglu2 0.881 → 0.923 from the mouth held across; terracotta_warrior
0.881 → 0.931 and the Mona Lisa 0.920 → 0.971 from the gain), amplitude ratio in range on
18 → 21 (photo_bw_young_man 1.53 → 1.24, EAMM_brade2 1.31 → 1.13, the Mona Lisa 0.69 →
1.12); by woman_long_expressive all 24 pairs stay in range (einstein's mouth r 0.926 →
0.915); self-reenactment within 0.03 dB a clip (lab notes, "The mouth across as one, and
its opening as the tracker reads it").

The irises move with their eyes: each takes its eye's mean correction, not its own. The
tracker reads a drawn iris's shift short (a carved one not at all), and chasing that read
swung the asked irises about twice as far as the driver's, towards the eyes' corners (the
Mona Lisa by woman_long_expressive: her iris 0.82 ± 0.11 of the eye's width from its outer
corner, the driver's 0.61 ± 0.06), while the irises read on the output moved no further
(0.61 ± 0.033 before, 0.60 ± 0.034 now) and the eye drawn around an iris in its corner
read narrower. Cross-reenactment, 48 pairs: eye r mean 0.948 → 0.955 (by
woman_long_expressive: the Mona Lisa 0.882 → 0.932, SadTalker_art_11 0.920 → 0.957), other
targets within the spread a pair's number moves by; self-reenactment AKD 0.91 → 0.90, face
PSNR 3.05 → 3.04 dB over static.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from streamer import landmarks as L
from streamer.geometry import face_frame, fit_head_pose
from streamer.tracker import FaceTracker, TrackerConfig

_LID_PAIRS = np.array(L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS)
_LIP_PAIRS = np.array(L.LIP_PAIRS)
_GAP_PAIRS = np.concatenate([_LID_PAIRS, _LIP_PAIRS])  # (upper, lower)
_MOUTH = np.array(L.MOUTH_REGION)
_OVAL = np.array(L.FACE_OVAL)
_EYE_IRISES = ((np.array(L.RIGHT_EYE), np.array(L.RIGHT_IRIS)),
               (np.array(L.LEFT_EYE), np.array(L.LEFT_IRIS)))


@dataclass(frozen=True)
class RefineConfig:
    enabled: bool = True
    # fraction of the residual taken out. Six self-reenactment clips, an early version (no cap,
    # no gap rule, frame 0 as the rest), residual smoothed over 1.5 frames: gain 0.75 AKD
    # 0.94, face PSNR +2.62 dB over static, mouth SSIM +0.112; gain 1.0 0.96 / +2.61 / +0.111.
    # Four of the clips, gain 1.0: not smoothed 1.01 / +2.69 / +0.130, smoothed 1.01 / +2.72 /
    # +0.131. Looking at the crop alone instead of the pasted frame: 0.97 / +2.50 / +0.109.
    gain: float = 0.75
    passes: int = 1  # render-track-correct rounds, each against the asked targets
    sigma_frames: float = 1.5  # Gaussian time constant of the residual's smoothing
    max_shift: float = 0.1  # largest correction of one point, in IODs of the target
    min_gap: float = 0.012  # smallest lid/lip gap a correction may leave, in IODs
    # "drawn": mouth and jaw shift as one where the mouth is drawn (see above); "width":
    # there the mouth's points move up and down each by its own. With both, the mouth moves
    # across by one common shift in every frame (a drawn mouth keeps the width asked:
    # "none" narrowed a round "O" to a slit; a closed one pushed aside does not fold);
    # "lips": lip gaps kept, everything else per point; "none": per point (a gap still
    # never closes). Six cross pairs whose mouth the tracker misreads most, mouth r: none
    # 0.48–0.83, lips 0.45–0.91, drawn 0.61–0.96. "auto": "width" where the first render
    # shows that the tracker reads this portrait's drawn mouths as drawn (misread_gap ≤
    # trust_gap), else "drawn"; correct() alone, with no render to judge by, takes "auto"
    # as "drawn".
    hold: Literal["auto", "drawn", "width", "lips", "none"] = "auto"
    # IOD: most mean |seen − asked| mouth opening over the frames whose mouth is drawn for
    # the tracker to be trusted there (six self-reenactment clips 0.003–0.021; the cross
    # pairs whose lip sync point-by-point correction cost most, 0.026–0.056) ...
    trust_gap: float = 0.022
    # ... judged on at least this many drawn frames (a driver who barely opens his mouth,
    # man_glasses_office, draws 12–14 in 300 frames: too few to judge by, and there point
    # by point cost SadTalker_sad1 0.902 → 0.880 of mouth r)
    trust_frames: int = 30
    # IOD past the portrait's opening from which the hold is whole (0.15: self-reenactment
    # mouth SSIM +0.1095 instead of +0.109, the six cross pairs within 0.006)
    drawn_ramp: float = 0.05
    # Where the mouth is held ("drawn"), the first render still says how wide the tracker
    # reads this portrait's drawn openings: the slope of seen over asked opening past the
    # rest (frames past opening_from IOD, at least opening_frames of them: man_glasses_office
    # opens that far in 12 of 300). Read outside 1 ± opening_band, the mouth opens by one
    # factor over the clip (the lower face's motion scaled, at most opening_limit either
    # way in a pass; 1 turns it off) so that it reads at the band's edge. Slopes seen with
    # man_glasses_office: 0.65 (the Mona Lisa's olive cavity read as lip) to 1.57
    # (photo_bw_young_man's grey tongue read as mouth). Band 0.1 instead: einstein ×
    # woman_long_expressive, read 0.75× as wide under the moustache and opened 1.2×, went to
    # mouth r 0.897 (0.915 at 0.15); terracotta_warrior × man_glasses_office ratio 1.31.
    opening_band: float = 0.15
    opening_limit: float = 1.4
    opening_from: float = 0.03
    opening_frames: int = 8


def smooth_residuals(residuals: Sequence[np.ndarray | None], sigma: float
                     ) -> Iterator[np.ndarray | None]:
    """Gaussian smoothing over time, weighted by which frames have a residual; a frame with
    none takes its neighbours' (None where no neighbour within 3σ has one). Frame by frame,
    in float32, as the caller takes them: a long clip holds no second copy of its residuals
    (an hour at 30 fps, 1.2 GB of float64 before)."""
    if sigma <= 0:
        yield from residuals
        return
    radius = int(np.ceil(3.0 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    n = len(residuals)
    for t in range(n):
        acc, weight = None, 0.0
        for k, w in zip(range(t - radius, t + radius + 1), kernel, strict=True):
            r = residuals[k] if 0 <= k < n else None
            if r is not None:
                acc = w * r if acc is None else acc + w * r
                weight += float(w)
        yield None if acc is None else (acc / weight).astype(np.float32)


def _drawn_mouth(target: np.ndarray, rest: np.ndarray | None, ramp: float) -> float:
    """0–1: how far the target's mouth opens past the portrait's own (where the renderer
    draws a mouth interior the portrait does not have), 1 from `ramp` IOD past it."""
    if rest is None:
        return 1.0
    past = L.mouth_gap(target) - L.mouth_gap(rest)
    return float(np.clip(past / max(ramp, 1e-6), 0.0, 1.0))


def misread_gap(asked: Sequence[np.ndarray], residuals: Sequence[np.ndarray | None],
                rest: np.ndarray, ramp: float) -> tuple[float, int]:
    """How far the tracker misreads the drawn mouths: mean |seen − asked| mouth opening, in
    IODs, over the frames whose mouth is drawn (seen = asked + residual; NaN when none is),
    and how many frames that is."""
    errors = [abs(L.mouth_gap(a + r) - L.mouth_gap(a))
              for a, r in zip(asked, residuals, strict=True)
              if r is not None and _drawn_mouth(a, rest, ramp) >= 0.5]
    return (float(np.mean(errors)) if errors else float("nan")), len(errors)


def opening_gain(asked: Sequence[np.ndarray], residuals: Sequence[np.ndarray | None],
                 rest: np.ndarray, config: RefineConfig) -> float:
    """The factor on the mouth's opening past the rest that brings the tracker's read of it
    into 1 ± opening_band of what is asked (1: it reads so already, or too few frames open)."""
    rest_gap = L.mouth_gap(rest)
    pairs = [(L.mouth_gap(a) - rest_gap, L.mouth_gap(a + r) - rest_gap)
             for a, r in zip(asked, residuals, strict=True) if r is not None]
    wide = np.array([(a, s) for a, s in pairs if a > config.opening_from]).reshape(-1, 2)
    if len(wide) < config.opening_frames:
        return 1.0
    slope = float(wide[:, 0] @ wide[:, 1] / (wide[:, 0] @ wide[:, 0]))
    band = config.opening_band
    gain = float(np.clip(slope, 1.0 - band, 1.0 + band)) / max(slope, 1e-6)
    return float(np.clip(gain, 1.0 / config.opening_limit, config.opening_limit))


def scale_opening(target: np.ndarray, rest: np.ndarray, gain: float, ramp: float
                  ) -> np.ndarray:
    """target with the lower face's motion from the rest scaled by gain along the face, head
    pose taken out first and put back after: points from the upper lip down take all of it,
    fading to none at the nose; only where the mouth opens past the rest (fully from ramp IOD
    past it), so a closed mouth stays as asked."""
    weight = _drawn_mouth(target, rest, ramp)
    if gain == 1.0 or weight == 0.0:
        return target
    pose = fit_head_pose(rest, target)
    frame = face_frame(rest)
    still, moved = frame.to_face(rest.astype(np.float64)), frame.to_face(pose.invert(target))
    nose, lip = still[2, 1], still[13, 1]
    lower = np.clip((still[:, 1] - nose) / max(lip - nose, 1e-6), 0.0, 1.0)
    moved[:, 1] += (gain - 1.0) * weight * lower * (moved[:, 1] - still[:, 1])
    out = target.astype(np.float64).copy()
    out[:, :2] = pose.apply(frame.to_image(moved))[:, :2]
    return out.astype(np.float32)


def resolve_hold(config: RefineConfig, misread: tuple[float, int]) -> RefineConfig:
    """hold="auto" → "width" when the drawn mouths read true (misread_gap ≤ trust_gap over
    at least trust_frames frames), else "drawn"; other holds stay."""
    if config.hold != "auto":
        return config
    gap, frames = misread
    trusted = frames >= config.trust_frames and gap <= config.trust_gap
    return replace(config, hold="width" if trusted else "drawn")


def correct(target: np.ndarray, residual: np.ndarray | None, config: RefineConfig,
            rest: np.ndarray | None = None) -> np.ndarray:
    """One frame's corrected target: (478, 3) crop pixels; z is left alone. rest: the
    portrait's own landmarks (None: take every mouth as drawn)."""
    if residual is None:
        return target
    unit = L.iod(target)
    shift = config.gain * residual[:, :2]
    norm = np.linalg.norm(shift, axis=1, keepdims=True)
    cap = config.max_shift * unit
    shift *= np.minimum(1.0, cap / np.maximum(norm, 1e-9))
    for eye, iris in _EYE_IRISES:  # an iris moves with its eye (see the module's notes)
        shift[iris] = shift[eye].mean(axis=0)
    before = target.astype(np.float64)
    down = before[152, :2] - before[10, :2]  # chin − forehead: the face's downward axis
    down /= max(float(np.linalg.norm(down)), 1e-9)
    if config.hold in ("drawn", "auto", "width"):  # the mouth moves across as one
        across = np.array([-down[1], down[0]])
        sideways = shift[_MOUTH] @ across
        shift[_MOUTH] -= (sideways - sideways.mean())[:, None] * across
    if config.hold in ("drawn", "auto"):  # where the mouth is drawn, mouth and jaw move as one
        drawn = _drawn_mouth(before, rest, config.drawn_ramp)
        if drawn > 0.0:
            corners = before[[61, 291], :2].mean(axis=0) @ down
            group = np.union1d(_MOUTH, _OVAL[before[_OVAL, :2] @ down > corners])
            shift[group] += drawn * (shift[group].mean(axis=0) - shift[group])
    elif config.hold == "lips":  # a lip pair moves, its gap does not
        up, lo = _LIP_PAIRS[:, 0], _LIP_PAIRS[:, 1]
        opening = ((shift[lo] - shift[up]) @ down)[:, None] * down
        shift[up] += 0.5 * opening
        shift[lo] -= 0.5 * opening
    out = before.copy()
    out[:, :2] -= shift
    _keep_gaps(before, out, down, config.min_gap * unit)
    return out.astype(np.float32)


def _keep_gaps(before: np.ndarray, after: np.ndarray, down: np.ndarray, min_gap: float
               ) -> None:
    """Lids and lips: a gap may not shrink below the smaller of its old value and min_gap,
    and a pair the motion transfer shut (gap ≤ min_gap) keeps its gap exactly."""
    up, lo = _GAP_PAIRS[:, 0], _GAP_PAIRS[:, 1]
    gap_before = (before[lo, :2] - before[up, :2]) @ down
    gap_after = (after[lo, :2] - after[up, :2]) @ down
    shut = gap_before <= min_gap * 1.01
    floor = np.minimum(gap_before, min_gap)
    wanted = np.where(shut, gap_before, np.maximum(gap_after, floor))
    move = 0.5 * (wanted - gap_after)[:, None] * down
    np.add.at(after[:, :2], up, -move)
    np.add.at(after[:, :2], lo, move)


def refine_targets(
    targets: Sequence[np.ndarray],
    render: Callable[[np.ndarray], np.ndarray],
    rest: np.ndarray,
    config: RefineConfig = RefineConfig(),
    tracker: TrackerConfig = TrackerConfig(),
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    to_crop: Callable[[np.ndarray], np.ndarray] = lambda points: points,
) -> list[np.ndarray]:
    """targets: (478, 3) crop pixels per frame; render: target → the image to look at (the
    frame as delivered: the crop pasted into the portrait; from a renderer of its own, as a
    renderer with references keeps state from frame to frame); to_crop: that image's pixels
    → crop pixels; rest: the portrait's own crop landmarks. Returns the corrected targets
    (the input when the portrait's own face is not found in its render)."""
    current = list(targets)
    for _ in range(config.passes):
        with FaceTracker(tracker, video=True) as seen_by:
            seen_rest = seen_by.detect(render(rest))
            if seen_rest is None:
                return current
            offset = to_crop(seen_rest) - rest
            residuals: list[np.ndarray | None] = []
            for asked, asking in zip(targets, progress(current), strict=True):
                seen = seen_by.detect(render(asking))
                residuals.append(None if seen is None else to_crop(seen) - asked - offset)
        smoothed = smooth_residuals(residuals, config.sigma_frames)
        used = resolve_hold(config, misread_gap(targets, residuals, rest, config.drawn_ramp))
        gain = opening_gain(targets, residuals, rest, config) if used.hold == "drawn" else 1.0
        current = [correct(scale_opening(c, rest, gain, config.drawn_ramp), r, used, rest)
                   for c, r in zip(current, smoothed, strict=True)]
    return current
