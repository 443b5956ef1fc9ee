"""Closed-loop refinement of animate's targets (streamer.refine)."""

from __future__ import annotations

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.refine import (
    RefineConfig,
    correct,
    misread_gap,
    opening_gain,
    refine_targets,
    resolve_hold,
    scale_opening,
    smooth_residuals,
)
from tests.helpers import open_mouth, turn_head


def _gap(points: np.ndarray, upper: int, lower: int) -> float:
    down = points[152, :2] - points[10, :2]
    down = down / np.linalg.norm(down)
    return float((points[lower, :2] - points[upper, :2]) @ down)


def test_smoothing_fills_a_missing_frame_and_damps_a_spike():
    ones = np.ones((478, 3))
    track = [ones * 2.0 for _ in range(9)]
    track[4] = None
    track[6] = ones * 12.0
    out = list(smooth_residuals(track, 1.5))
    assert out[4] is not None and 2.0 < out[4][0, 0] < 12.0  # taken from its neighbours
    assert out[6][0, 0] < 7.0  # a one-frame spike of +10 is mostly smoothed away
    np.testing.assert_allclose(out[0], out[0][0, 0], rtol=1e-6)  # every point alike
    assert out[0].dtype == np.float32  # half the memory of float64 for a long clip
    assert list(smooth_residuals([None, None], 1.5)) == [None, None]
    assert list(smooth_residuals(track, 0.0))[6] is track[6]


def test_a_correction_is_capped_and_leaves_depth_alone(astronaut_portrait):
    target = astronaut_portrait.crop_landmarks
    residual = np.zeros((478, 3))
    residual[1] = [1000.0, 0.0, 55.0]  # a tracking blunder at one point
    residual[4] = [2.0, -1.0, 0.0]
    config = RefineConfig(gain=0.5)
    out = correct(target, residual, config)
    moved = np.linalg.norm(out[:, :2] - target[:, :2], axis=1)
    assert np.isclose(moved[1], config.max_shift * L.iod(target), rtol=1e-4)
    np.testing.assert_allclose(out[4, :2], target[4, :2] - [1.0, -0.5], atol=1e-4)
    np.testing.assert_array_equal(out[:, 2], target[:, 2])
    assert correct(target, None, config) is target


def test_an_iris_moves_with_its_eye_not_after_its_own_read(astronaut_portrait):
    """The tracker reads a drawn iris's shift poorly (a carved one not at all): chasing that
    read swung the asked irises towards the eyes' corners. An iris takes its eye's mean
    correction instead."""
    target = astronaut_portrait.crop_landmarks
    unit = L.iod(target)
    residual = np.zeros((478, 3))
    residual[L.RIGHT_IRIS, 0] = 0.05 * unit  # the iris read aside, its lids where asked
    residual[L.LEFT_EYE, 1] = 0.02 * unit  # the whole eye read lower, its iris where asked
    out = correct(target, residual, RefineConfig(gain=1.0, hold="none"))
    np.testing.assert_allclose(out[L.RIGHT_IRIS, :2], target[L.RIGHT_IRIS, :2], atol=1e-3)
    moved = out[L.LEFT_IRIS, :2] - target[L.LEFT_IRIS, :2]
    np.testing.assert_allclose(moved, np.tile([0.0, -0.02 * unit], (5, 1)), atol=1e-3)


def test_a_correction_never_crosses_lips_nor_opens_a_shut_lid(astronaut_portrait):
    target = astronaut_portrait.crop_landmarks.copy()
    unit = L.iod(target)
    upper_lid, lower_lid = L.RIGHT_LID_PAIRS[3]
    # shut the lid as the motion transfer does (gap = min_gap)
    mid = 0.5 * (target[upper_lid] + target[lower_lid])
    down = target[152, :2] - target[10, :2]
    down = down / np.linalg.norm(down)
    target[upper_lid, :2] = mid[:2] - 0.006 * unit * down
    target[lower_lid, :2] = mid[:2] + 0.006 * unit * down
    upper_lip, lower_lip = L.LIP_PAIRS[4]
    residual = np.zeros((478, 3))
    residual[upper_lid, :2] = 0.02 * unit * down  # "seen lower": the lid would move up, open
    residual[upper_lip, :2] = -0.08 * unit * down  # "seen higher": the lip would move down
    residual[lower_lip, :2] = 0.08 * unit * down  # ... and the lower one up, through it
    out = correct(target, residual, RefineConfig(gain=1.0, hold="none"))
    assert np.isclose(_gap(out, upper_lid, lower_lid), _gap(target, upper_lid, lower_lid),
                      atol=1e-3)
    assert _gap(out, upper_lip, lower_lip) >= min(_gap(target, upper_lip, lower_lip),
                                                  0.012 * unit) - 1e-3


def test_refinement_makes_up_for_a_renderer_that_moves_the_face_half_as_far(astronaut_portrait):
    """A real tracker on a fake renderer: the crop is shifted by half of what the targets
    ask; the refined targets ask for more, so the face lands nearer where it was asked."""
    crop, rest = astronaut_portrait.crop, astronaut_portrait.crop_landmarks
    size = crop.shape[1::-1]

    def render(target: np.ndarray) -> np.ndarray:
        dx, dy = 0.5 * (target[:, :2] - rest[:, :2]).mean(axis=0)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(crop, m, size, borderMode=cv2.BORDER_REPLICATE)

    targets = [rest + np.float32([k, 0.5 * k, 0]) for k in range(0, 20, 2)]
    # one pass: the face moved 0.5 of the ask, and 0.75 of the missing half is asked on top;
    # a second pass looks at that render and asks for 0.75 of what is still missing
    once = 1 + 0.75 * 0.5
    for passes, factor in ((1, once), (2, once + 0.75 * (1 - 0.5 * once))):
        config = RefineConfig(gain=0.75, sigma_frames=1.0, passes=passes)
        refined = refine_targets(targets, render, rest, config)
        assert len(refined) == len(targets)
        for t in range(3, 7):  # inside the track (at its ends the smoothing sees one side)
            asked = (targets[t][:, :2] - rest[:, :2]).mean(axis=0)
            got = (refined[t][:, :2] - rest[:, :2]).mean(axis=0)
            np.testing.assert_allclose(got, asked * factor, atol=0.6)


def test_where_the_mouth_is_drawn_mouth_and_jaw_move_as_one(astronaut_portrait):
    """The tracker misreads drawn mouths (a dark cavity read as closed lips), so where the
    target opens the mouth past the portrait's own, the mouth and the jaw below its corners
    take one common shift: their shape stays the transfer's. A mouth no wider than the
    portrait's is corrected up and down point by point, across as one."""
    rest = astronaut_portrait.crop_landmarks
    unit = L.iod(rest)
    down = rest[152, :2] - rest[10, :2]
    down = down / np.linalg.norm(down)
    opened = rest.copy()
    lower = [lo for _, lo in L.LIP_PAIRS] + [17, 84, 314, 18, 200, 199, 175, 152]
    opened[lower, :2] += 0.15 * unit * down
    residual = np.random.default_rng(0).normal(0.0, 1.5, (478, 3))
    mouth = np.array(L.MOUTH_REGION)
    chin_side = [172, 397]  # jaw below the mouth corners, not in MOUTH_REGION
    moved = correct(opened, residual, RefineConfig(), rest)[:, :2] - opened[:, :2]
    np.testing.assert_allclose(moved[mouth], np.broadcast_to(moved[mouth].mean(0), (len(mouth), 2)),
                               atol=1e-3)
    np.testing.assert_allclose(moved[chin_side], moved[mouth[:2]], atol=1e-3)
    assert np.abs(moved[L.NOSE] - moved[mouth].mean(0)).max() > 0.1  # the rest moves freely
    free = correct(rest, residual, RefineConfig(), rest)[:, :2] - rest[:, :2]
    assert np.abs(free[mouth] - free[mouth].mean(0)).max() > 0.1
    across = np.array([-down[1], down[0]])
    np.testing.assert_allclose(free[mouth] @ across, (free[mouth] @ across).mean(), atol=1e-3)


def test_drawn_mouths_are_corrected_point_by_point_only_where_the_tracker_reads_them_true(
        astronaut_portrait):
    """hold="auto" judges from the first render: where the tracker sees the drawn mouths
    open about as wide as asked, it is trusted with them (point by point); where it reads
    them nearly shut, mouth and jaw stay held. Mouths no wider than the portrait's own do
    not count."""
    rest = astronaut_portrait.crop_landmarks
    unit = L.iod(rest)
    down = rest[152, :2] - rest[10, :2]
    down = down / np.linalg.norm(down)
    lower = [lo for _, lo in L.LIP_PAIRS]
    opened = rest.copy()
    opened[lower, :2] += 0.2 * unit * down
    rng = np.random.default_rng(1)
    true_read = [rng.normal(0.0, 0.005 * unit, (478, 3)) for _ in range(6)]
    shut_read = []
    for noise in true_read:
        shut = noise.copy()
        shut[lower, :2] -= 0.1 * unit * down  # the lower lip seen 0.1 IOD higher than asked
        shut_read.append(shut)
    asked = [opened] * 6
    config = RefineConfig(trust_frames=6)
    assert config.hold == "auto"
    good = misread_gap(asked, true_read, rest, config.drawn_ramp)
    bad = misread_gap(asked, shut_read, rest, config.drawn_ramp)
    assert good[0] < 0.015 and abs(bad[0] - 0.1) < 0.015 and good[1] == bad[1] == 6
    assert resolve_hold(config, good).hold == "width"
    assert resolve_hold(config, bad).hold == "drawn"
    assert resolve_hold(RefineConfig(trust_frames=7), good).hold == "drawn"  # too few frames
    # closed mouths (not drawn) and frames without a face are not evidence
    closed = misread_gap([rest] * 6, shut_read, rest, config.drawn_ramp)
    assert np.isnan(closed[0]) and closed[1] == 0
    assert misread_gap(asked, [None] * 6, rest, config.drawn_ramp)[1] == 0
    assert resolve_hold(config, closed).hold == "drawn"
    assert resolve_hold(RefineConfig(hold="lips"), good).hold == "lips"
    # with no render to judge by, "auto" holds as "drawn" does
    np.testing.assert_array_equal(correct(opened, shut_read[0], config, rest),
                                  correct(opened, shut_read[0], RefineConfig(hold="drawn"), rest))


def test_a_trusted_drawn_mouth_keeps_the_width_asked(astronaut_portrait):
    """hold="width" (what "auto" takes where the tracker reads drawn mouths true): the
    mouth's points move up and down each by its own, across by one common shift, so the
    correction cannot squeeze a round open mouth into a slit, nor fold a closed one pushed
    to one side at its corner."""
    rest = astronaut_portrait.crop_landmarks
    unit = L.iod(rest)
    down = rest[152, :2] - rest[10, :2]
    down = down / np.linalg.norm(down)
    across = np.array([-down[1], down[0]])
    opened = rest.copy()
    opened[[lo for _, lo in L.LIP_PAIRS], :2] += 0.15 * unit * down
    residual = np.random.default_rng(2).normal(0.0, 1.5, (478, 3))
    mouth = np.array(L.MOUTH_REGION)
    moved = correct(opened, residual, RefineConfig(hold="width"), rest)[:, :2] - opened[:, :2]
    sideways, vertical = moved[mouth] @ across, moved[mouth] @ down
    np.testing.assert_allclose(sideways, sideways.mean(), atol=1e-3)
    assert vertical.std() > 0.3  # heights corrected point by point
    free = correct(opened, residual, RefineConfig(hold="none"), rest)[:, :2] - opened[:, :2]
    assert (free[mouth] @ across).std() > 0.3
    closed = correct(rest, residual, RefineConfig(hold="width"), rest)[:, :2] - rest[:, :2]
    np.testing.assert_allclose(closed[mouth] @ across, (closed[mouth] @ across).mean(), atol=1e-3)


def test_a_portrait_whose_drawn_mouths_read_too_wide_opens_less(astronaut_portrait):
    """The first render says how wide the tracker reads the drawn openings against what was
    asked (one slope over the clip); read outside 1 ± opening_band, the mouth's opening
    takes the factor that brings the read to the band's edge, within opening_limit."""
    rest = astronaut_portrait.crop_landmarks.astype(np.float64)
    config = RefineConfig()
    asked = [open_mouth(rest, a) for a in np.linspace(0.0, 0.25, 12)]

    def gain(read: float, frames: int = 12) -> float:
        residuals = [(read - 1.0) * (a - rest) for a in asked[:frames]]
        return opening_gain(asked[:frames], residuals, rest, config)

    assert config.opening_band == 0.15
    assert np.isclose(gain(1.5), 1.15 / 1.5, rtol=0.02)  # read 1.5× as wide: opens 0.77×
    assert np.isclose(gain(0.7), 0.85 / 0.7, rtol=0.02)  # read short: opens wider
    assert np.isclose(gain(0.5), config.opening_limit)  # ... at most 1.4×
    assert gain(1.1) == 1.0 and gain(0.9) == 1.0  # read true enough: as asked
    assert gain(1.5, frames=6) == 1.0  # too few open frames to judge by


def test_the_opening_scales_from_the_rest_on_a_turned_head_and_nothing_else_moves(
        astronaut_portrait):
    rest = astronaut_portrait.crop_landmarks.astype(np.float64)
    past = lambda points: L.mouth_gap(points) - L.mouth_gap(rest)  # noqa: E731
    opened = turn_head(open_mouth(rest, 0.2), 15.0, 5.0, 3.0)
    out = scale_opening(opened, rest, 0.7, ramp=0.05)
    assert np.isclose(past(out) / past(opened), 0.7, atol=0.02)
    upper_face = L.RIGID + L.NOSE + [0, 37, 267]  # skull, nose, upper lip: where they were
    np.testing.assert_allclose(out[upper_face], opened[upper_face], atol=1e-3)
    assert out[152, 1] < opened[152, 1] - 0.03 * L.iod(rest)  # the chin comes up with the lip
    np.testing.assert_array_equal(out[:, 2], opened[:, 2])
    shut = turn_head(rest, 15.0, 5.0, 3.0)  # a mouth no wider than the rest is left alone
    np.testing.assert_array_equal(scale_opening(shut, rest, 0.7, ramp=0.05), shut)
    assert scale_opening(opened, rest, 1.0, ramp=0.05) is opened
