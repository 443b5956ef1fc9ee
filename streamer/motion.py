"""Relative motion transfer: the driver's change from its neutral frame, applied to the
portrait's own pose and expression, scaled to the portrait's face proportions.

A MotionState is what was transferred for one frame, independent of the portrait's pixels;
states can be blended, which is how the avatar eases to neutral when the face is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from streamer import landmarks as L
from streamer.geometry import FaceFrame, face_frame, fit_head_pose, orthonormalize

if TYPE_CHECKING:
    from streamer.turn_limits import TurnLimits

_LID_PAIRS = np.array(L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS)  # (14, 2) upper, lower
_LIP_PAIRS = np.array(L.LIP_PAIRS)  # (9, 2)
_LIPS_OUTER, _LIPS_INNER = np.array(L.LIPS_OUTER), np.array(L.LIPS_INNER)  # point for point
_BROWS = (np.array(L.RIGHT_BROW), np.array(L.LEFT_BROW))
_UPPER_LIDS = (np.array(L.RIGHT_LID_PAIRS)[:, 0], np.array(L.LEFT_LID_PAIRS)[:, 0])


@dataclass(frozen=True)
class MotionConfig:
    mode: Literal["relative", "absolute"] = "relative"  # absolute: target = driver's own landmarks
    head_pose: bool = True  # transfer head rotation, translation and scale; else expression only
    expression_gain: float = 1.0  # multiplies the driver's expression change
    blink_floor: float = 0.15  # driver lid gap (× neutral) at and below which lids shut fully
    min_gap: float = 0.012  # smallest lid/lip gap kept, in IOD (lids and lips never cross)
    # ... but lips the portrait itself shows closer than min_gap may close to their own gap
    # (never below closed_lip_gap): held at min_gap, a closed mouth (SadTalker_art_11 rests at
    # 0.002 IOD) stood a pixel or two parted. Cross-reenactment by man_glasses_office,
    # who talks with his lips nearly closed, 24 pairs: mouth r mean 0.908 → 0.915
    # (SadTalker_sad1 0.902 → 0.957, EAMM_scarlett 0.912 → 0.970; SadTalker_art_11 0.812 → 0.762)
    closed_lip_gap: float = 0.002
    max_ratio_scale: float = 1.6  # portrait/driver proportion ratios are clipped to [1/x, x]
    # The mouth's up-and-down motion follows a longer lower face at most this much: a jaw
    # 1.2× as long (against the eyes) does not open the lips 1.2× as wide, beyond what reads
    # as the driver's speech. A shorter face still opens less by its full ratio, so a
    # big-jawed driver never stretches a small face. Cross-reenactment by man_glasses_office
    # (his lower face short against his eyes: most portraits' ratios are 1.0-1.2), 1.6 → 1.1:
    # amplitude ratio MuseTalk_musk 1.41 → 1.28, einstein 1.31 → 1.26 (lab notes, "The
    # mouth opens no wider for a longer chin").
    max_opening_scale: float = 1.1
    # How much of the driver's lip thickness change the portrait takes (0: its lips keep
    # their own thickness and move with the inner lip line; 1: the driver's change in his
    # own face units). A 2D warp draws lips pressed thin or pushed forward as the portrait's
    # lips squeezed or stretched over whatever they part: a dark upper lip stretched over a
    # red lower one, teeth under a grey band. Cross-reenactment by man_glasses_office, who
    # talks with his lips nearly closed and presses and purses them, 24 pairs, 1 → 0: mouth
    # r ≥ 0.9 on 18 → 19 (worst 0.636 → 0.771, SadTalker_art_11; EAMM_60 0.875 → 0.904),
    # amplitude ratio in range on 17 → 18 (EAMM_14 1.53 → 1.42, einstein 1.49 → 1.36);
    # self-reenactment AKD 0.89 → 0.91, face PSNR +3.07 → +3.04 dB, mouth SSIM +0.115 →
    # +0.113 over static (lab notes, "The lips keep their own thickness").
    lip_thickness: float = 0.0
    # The head turns at most as far as the portrait's warp shows without tearing, each way
    # (streamer.turn_limits: found once per portrait by whoever renders it, the animator),
    # easing into that limit. False: it turns as the driver does, and folds past ~30°.
    hold_turns: bool = True


@dataclass(frozen=True)
class MotionState:
    """One frame's transferred motion, in face-aligned units (see geometry.FaceFrame)."""

    delta: np.ndarray  # (478, 3) expression change, driver face units, already proportion-scaled
    lid_ratio: np.ndarray  # (14,) lid gap relative to neutral (1 open as neutral, 0 shut)
    rotation: np.ndarray  # (3, 3) head rotation since neutral, in the driver's face frame
    scale: float  # head scale since neutral
    shift: np.ndarray  # (3,) head translation since neutral, face units

    @staticmethod
    def neutral() -> MotionState:
        return MotionState(np.zeros((478, 3)), np.ones(14), np.eye(3), 1.0, np.zeros(3))

    def blend(self, other: MotionState, w: float) -> MotionState:
        """(1 − w)·self + w·other, rotations re-orthonormalised."""
        mix = lambda a, b: (1.0 - w) * a + w * b  # noqa: E731
        return MotionState(
            mix(self.delta, other.delta),
            mix(self.lid_ratio, other.lid_ratio),
            orthonormalize(mix(self.rotation, other.rotation)),
            float(mix(self.scale, other.scale)),
            mix(self.shift, other.shift),
        )

    def with_lids(self, lid_ratio: np.ndarray) -> MotionState:
        return replace(self, lid_ratio=lid_ratio)


def _pair_gaps(face_points: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Gap lower − upper along the face's y axis. face_points: (478, 3) face-aligned."""
    return face_points[pairs[:, 1], 1] - face_points[pairs[:, 0], 1]


def _length(points: np.ndarray, a: int, b: int, axis: int) -> float:
    return float(abs(points[a, axis] - points[b, axis]))


def _brow_height(face: np.ndarray) -> float:
    """How high the brows stand over the upper lids, face units (mean of the two sides)."""
    return float(np.mean([face[lid, 1].mean() - face[brow, 1].mean()
                          for brow, lid in zip(_BROWS, _UPPER_LIDS, strict=True)]))


def _proportion_scales(driver: np.ndarray, portrait: np.ndarray, clip: float,
                       opening_clip: float) -> np.ndarray:
    """Per-landmark (x, y, z) multipliers mapping driver face-unit deltas onto the portrait,
    so a long-jawed driver does not stretch a short face; the mouth's vertical one is at most
    opening_clip. The brows rise in proportion to how high they stand over the eyes: a
    driver's brows far above her lids rise further than a portrait's low ones can show
    (cross-reenactment by woman_long_expressive, whose brows stand 0.222 eye distances over
    her lids, the Mona Lisa's 0.135: her raised brows, a stretch of bare skin over the
    lids, read as the head tilting: pose error 1.55° → 1.45°, eye r 0.876 → 0.886; lab
    notes, "The brows rise as far as they stand"). driver, portrait: face-aligned."""

    def clipped(r: float) -> float:
        return float(np.clip(r, 1.0 / clip, clip))

    def ratio(a: int, b: int, axis: int) -> float:
        return clipped(_length(portrait, a, b, axis) / max(_length(driver, a, b, axis), 1e-6))

    face_x, face_y = ratio(234, 454, 0), ratio(10, 152, 1)
    scales = np.tile([face_x, face_y, face_x], (478, 1))
    opening = min(ratio(2, 152, 1), opening_clip)
    scales[L.MOUTH_REGION] = [ratio(61, 291, 0), opening, face_x]
    brows = clipped(_brow_height(portrait) / max(_brow_height(driver), 1e-6))
    scales[np.concatenate(_BROWS), 1] = brows
    return scales


class MotionTransfer:
    """Measures driver frames against the driver's neutral frame and renders the result onto
    the portrait's landmarks. One per (driver, portrait) pair; calibrate() sets the neutral."""

    def __init__(self, portrait_landmarks: np.ndarray, config: MotionConfig = MotionConfig()):
        """portrait_landmarks: (478, 3) pixels in the portrait image (or its crop)."""
        self.config = config
        self.portrait = portrait_landmarks.astype(np.float64)
        self._pframe = face_frame(self.portrait)
        self._pface = self._pframe.to_face(self.portrait)
        self._p_lid_gap = _pair_gaps(self._pface, _LID_PAIRS)
        self._p_lip_gap = _pair_gaps(self._pface, _LIP_PAIRS)
        self._neutral: np.ndarray | None = None
        self._dframe: FaceFrame | None = None
        self._dface: np.ndarray | None = None
        self._d_lid_gap: np.ndarray | None = None
        self._scales = np.ones((478, 3))
        self._turn = np.eye(3)  # the portrait's face axes in the driver's face frame
        # how far its head may turn each way (streamer.turn_limits); None: as the driver does
        self.turn_limits: TurnLimits | None = None

    @property
    def calibrated(self) -> bool:
        return self._neutral is not None

    def calibrate(self, driver_neutral: np.ndarray) -> None:
        """driver_neutral: (478, 3) pixels, the driver's reference (resting) face."""
        self._neutral = driver_neutral.astype(np.float64)
        self._dframe = face_frame(self._neutral)
        self._dface = self._dframe.to_face(self._neutral)
        self._d_lid_gap = np.maximum(_pair_gaps(self._dface, _LID_PAIRS), 1e-3)
        cfg = self.config
        self._scales = _proportion_scales(self._dface, self._pface, cfg.max_ratio_scale,
                                          cfg.max_opening_scale)
        self._turn = self._dframe.axes.T @ self._pframe.axes

    def measure(self, driver: np.ndarray) -> MotionState:
        """driver: (478, 3) pixels → the motion since neutral (calibrate first)."""
        if self._neutral is None or self._dframe is None or self._dface is None:
            raise RuntimeError("calibrate() with a neutral driver frame first")
        assert self._d_lid_gap is not None
        driver = driver.astype(np.float64)
        pose = fit_head_pose(self._neutral, driver)
        posefree = pose.invert(driver)  # driver's face with head motion removed
        face = self._dframe.to_face(posefree)
        delta = (face - self._dface) * self._scales * self.config.expression_gain
        thick = delta[_LIPS_OUTER, :2] - delta[_LIPS_INNER, :2]  # the lips' own change
        delta[_LIPS_OUTER, :2] = delta[_LIPS_INNER, :2] + self.config.lip_thickness * thick
        gaps = _pair_gaps(face, _LID_PAIRS) / self._d_lid_gap
        floor = self.config.blink_floor
        lid_ratio = np.clip((gaps - floor) / (1.0 - floor), 0.0, 1.6)
        axes = self._dframe.axes
        rotation = axes.T @ pose.rotation @ axes  # head rotation in face-frame coordinates
        shift = self._dframe.vectors_to_face(pose.centre_to - pose.centre_from)
        return MotionState(delta, lid_ratio, rotation, pose.scale, shift)

    def compose(self, state: MotionState) -> np.ndarray:
        """The portrait's target landmarks for a motion state → (478, 3) pixels."""
        cfg = self.config
        face = self._pface + state.delta
        self._set_gaps(face, _LID_PAIRS, np.maximum(self._lid_gaps(state.lid_ratio), cfg.min_gap))
        floor = np.clip(self._p_lip_gap, cfg.closed_lip_gap, cfg.min_gap)
        lip_gaps = np.maximum(_pair_gaps(face, _LIP_PAIRS), floor)
        self._set_gaps(face, _LIP_PAIRS, lip_gaps)
        if cfg.head_pose:
            rotation, shift = self._portrait_pose(state)
            if self.turn_limits is not None:  # held as the camera sees the turn
                axes = self._pframe.axes
                rotation = axes.T @ self.turn_limits.hold(axes @ rotation @ axes.T) @ axes
            face = self._turned(face, rotation, shift, state.scale)
        return self._pframe.to_image(face).astype(np.float32)

    def posed(self, rotation: np.ndarray) -> np.ndarray:
        """The portrait at rest turned by rotation ((3, 3), about the camera's axes, as
        compose turns it and as its turn limits take it) → (478, 3) pixels."""
        axes = self._pframe.axes
        face = self._turned(self._pface, axes.T @ rotation @ axes, np.zeros(3), 1.0)
        return self._pframe.to_image(face).astype(np.float32)

    def _turned(self, face: np.ndarray, rotation: np.ndarray, shift: np.ndarray,
                scale: float) -> np.ndarray:
        centre = self._pface[L.RIGID].mean(axis=0)
        return centre + shift + scale * (face - centre) @ rotation.T

    def _portrait_pose(self, state: MotionState) -> tuple[np.ndarray, np.ndarray]:
        """The head's rotation and shift in the portrait's face frame: the driver's turn about
        the camera's axes, as the camera sees the driver turn. Carried over face frame to face
        frame, a driver's yaw became yaw and roll on a portrait whose face frame leans against
        the driver's (the frames take their tilt from each face's own eye line and depth):
        cross-reenactment by woman_long_expressive, EAMM_brade2's targets turned 0.82° off the
        driver's rotation and the output read 1.94° off (about the camera's axes: 0.25°, 1.19°)."""
        turn = self._turn
        return turn.T @ state.rotation @ turn, state.shift @ turn

    def _lid_gaps(self, lid_ratio: np.ndarray) -> np.ndarray:
        """Each lid pair's gap, face units. Lids close in proportion to the portrait's own gap
        (a blink shuts any eye) and rise by the driver's own lid travel, scaled to the face: a
        narrow-eyed portrait widens its eyes as far as the driver does, not by a fraction of
        its narrow gap the tracker cannot tell from its rest (cross-reenactment by
        woman_long_expressive, who widens hers: Thin-Plate-Spline-Motion-Model_source's asked
        openness std 0.031 → 0.055, eye r 0.781 → 0.866)."""
        closing = lid_ratio * self._p_lid_gap
        if self._d_lid_gap is None:  # not calibrated: the ratio is all there is
            return closing
        travel = self._d_lid_gap * self._scales[_LID_PAIRS[:, 0], 1]
        return np.where(lid_ratio > 1.0, self._p_lid_gap + (lid_ratio - 1.0) * travel, closing)

    @staticmethod
    def _set_gaps(face: np.ndarray, pairs: np.ndarray, gaps: np.ndarray) -> None:
        """Move each (upper, lower) pair apart/together about its midpoint to the given gap."""
        mid = 0.5 * (face[pairs[:, 0], 1] + face[pairs[:, 1], 1])
        face[pairs[:, 0], 1] = mid - 0.5 * gaps
        face[pairs[:, 1], 1] = mid + 0.5 * gaps

    def transfer(self, driver: np.ndarray) -> np.ndarray:
        """Driver landmarks → portrait target landmarks, (478, 3) pixels."""
        if self.config.mode == "absolute":
            return driver.astype(np.float32)
        return self.compose(self.measure(driver))
