"""How far a portrait's head can turn before its warp tears: one limit per direction of yaw,
pitch and roll, found once per portrait, and the soft stop that holds a turn inside them.

A 2D warp shows a turned head by moving the portrait's pixels; what the turn would bring
into view the picture does not have. Turned towards the side a three-quarter portrait hides
(the Mona Lisa's far temple), the warp stretches a few columns of skin and hair across the
gap, and they show as streaks; tilted, the head drags the neck and the body below it
round. A webcam user looking at a second screen turns 30–45°, where portraits fold
(Einstein and the Mona Lisa: the face doubled over at 45° of yaw; tilted 45°, his jacket
swirled). So each
direction turns as far as the warp stretches no direction more than 1 / MIN_SCALE, and
the transferred turn eases into that limit instead of passing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamer.geometry import euler_to_rotation, rotation_to_euler

# Least scale the warp may reach (least_scale: 1 / the most a direction is stretched).
# Looked at the 512 crop: the Mona Lisa turned towards her far side, 0.61 (yaw −5°) clean,
# 0.32 (−10°) a faint streak at the temple, 0.10 (−15°) a smeared band, 0 (−20°) a fold;
# Einstein turned, 0.24 (−20°) a faint streak on his cheek, 0.15 (−25°) streaks; tilted,
# 0.38 (15°) his tie bent a little, 0.26 (20°) bent, 0.11 (30°) his jacket swirled.
# woman_beige_backdrop's smooth cheek showed nothing at 0.23 (−25°). A first version (0.3,
# each axis limited on its own and their shares added) held her own clip, 23° of yaw with
# 11° of pitch, to about half its turn: self-reenactment AKD 1.09 → 1.27.
MIN_SCALE = 0.25
MAX_TURN = 45.0  # degrees: no direction is searched further
KNEE = 0.7  # share of the limits a turn takes as asked; past it, it eases into them
DIRECTIONS = 8  # directions of turning and nodding together searched (TurnLimits.turn)
FIELD_STEP = 4  # crop pixels per cell of the generator's field (its field_div)
STEPS = 5  # bisection steps per direction: to within MAX_TURN / 2**STEPS = 1.4°


@dataclass(frozen=True)
class TurnLimits:
    """How far the head turns, about the camera's axes (geometry.rotation_to_euler's
    convention), from the portrait's own pose. A turn and a nod stretch the same parts of
    the picture (the Mona Lisa turned 20° and nodded 15°, each three quarters of its own
    limit, folded: least_scale 0.02; Einstein so, 0.46), so they are limited together, by
    direction; a tilt mostly drags the neck, so on its own."""

    # the largest turn (degrees of yaw and pitch together) in each of DIRECTIONS directions
    # of the yaw–pitch plane: the k-th along (cos, sin)(2πk / DIRECTIONS) of (yaw, pitch)
    turn: tuple[float, ...]
    roll: tuple[float, float]  # the most negative and the most positive tilt

    def reach(self, angles: np.ndarray) -> float:
        """How far a turn (yaw, pitch, roll degrees) goes towards the limits (1: at them):
        the turn's length over the limit in its direction (1 / limit interpolated between
        the two nearest directions searched: inside the chord between their limits),
        added as a vector to the tilt's share of its own."""
        yaw, pitch, roll = (float(a) for a in angles)
        k = (np.arctan2(pitch, yaw) / (2.0 * np.pi) * DIRECTIONS) % DIRECTIONS
        i, f = int(k) % DIRECTIONS, k - int(k)
        inverse = ((1.0 - f) / max(self.turn[i], 0.5)
                   + f / max(self.turn[(i + 1) % DIRECTIONS], 0.5))
        tilt = abs(roll) / max(self.roll[1] if roll > 0 else -self.roll[0], 0.5)
        return float(np.hypot(np.hypot(yaw, pitch) * inverse, tilt))

    def hold(self, rotation: np.ndarray) -> np.ndarray:
        """rotation (3, 3) → the same turn, scaled down where it reaches past KNEE of the
        limits, easing into them."""
        angles = np.array(rotation_to_euler(rotation))
        reach = self.reach(angles)
        held = soft_limit(reach)
        if held >= reach:
            return rotation
        return euler_to_rotation(*(angles * (held / reach)))


def soft_limit(reach: float, knee: float = KNEE) -> float:
    """reach as it is up to the knee, then easing (tanh) towards 1: it never gets there,
    and slows as it nears it rather than stopping at a wall."""
    if reach <= knee:
        return reach
    return knee + (1.0 - knee) * float(np.tanh((reach - knee) / (1.0 - knee)))


def least_scale(grid: np.ndarray, shown: np.ndarray | None = None,
                step: int = FIELD_STEP) -> float:
    """How far a sampling map stretches the picture: the least singular value of its
    Jacobian (source pixels per output pixel along the most stretched direction; 0 where it
    folds) over the pixels `shown` ((S, S) bool; None: all), from every step-th pixel: the
    generator's field is S / 4 cells a side, so finer differences only see its bilinear
    upsampling. grid: (S, S, 2) pixels."""
    g = grid[step // 2 :: step, step // 2 :: step].astype(np.float64) / step
    a, b = np.gradient(g[..., 0], axis=1), np.gradient(g[..., 0], axis=0)
    c, d = np.gradient(g[..., 1], axis=1), np.gradient(g[..., 1], axis=0)
    square = a * a + b * b + c * c + d * d  # σ₁² + σ₂²
    det = a * d - b * c  # ±σ₁σ₂, negative where the map folds
    spread = np.sqrt(np.maximum(square * square - 4.0 * det * det, 0.0))
    least = np.where(det > 0.0, np.sqrt(np.maximum(0.5 * (square - spread), 0.0)), 0.0)
    if shown is not None:
        least = np.where(shown[step // 2 :: step, step // 2 :: step], least, np.inf)
    return float(least.min())


def find_turn_limits(posed: Callable[[np.ndarray], np.ndarray],
                     scale: Callable[[np.ndarray], float]) -> TurnLimits:
    """posed: rotation (3, 3) → the portrait's target landmarks at rest, turned so, (478, 3)
    crop pixels; scale: target landmarks → least_scale of the renderer's warp towards them.
    Each direction by bisection: DIRECTIONS of turning and nodding, two of tilting."""

    def reach(way: np.ndarray) -> float:  # way: (yaw, pitch, roll) per degree
        lo, hi = 0.0, MAX_TURN  # shown at lo (at rest); past hi it is not looked for
        for _ in range(STEPS):
            mid = 0.5 * (lo + hi)
            shown = scale(posed(euler_to_rotation(*(mid * way)))) >= MIN_SCALE
            lo, hi = (mid, hi) if shown else (lo, mid)
        return lo

    angles = 2.0 * np.pi * np.arange(DIRECTIONS) / DIRECTIONS
    turn = tuple(reach(np.array([np.cos(a), np.sin(a), 0.0])) for a in angles)
    roll = (-reach(np.array([0.0, 0.0, -1.0])), reach(np.array([0.0, 0.0, 1.0])))
    return TurnLimits(turn, roll)
