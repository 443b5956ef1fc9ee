import numpy as np
import pytest

from streamer import landmarks as L
from streamer.geometry import face_frame, fit_head_pose, rotation_to_euler
from streamer.motion import MotionConfig, MotionState, MotionTransfer
from tests.helpers import close_eyes, lid_gaps, lip_gaps, open_mouth, rotate_yaw, turn_head


@pytest.fixture()
def transfer(astronaut_landmarks):
    t = MotionTransfer(astronaut_landmarks)
    t.calibrate(astronaut_landmarks)
    return t


def test_neutral_driver_leaves_the_portrait_as_it_is(transfer, astronaut_landmarks):
    out = transfer.transfer(astronaut_landmarks)
    err = np.abs(out - astronaut_landmarks)[:, :2].max() / L.iod(astronaut_landmarks)
    assert err < 0.02


def test_closed_portrait_mouth_opens_when_the_driver_opens(astronaut_landmarks):
    closed = astronaut_landmarks.copy()
    for up, low in L.LIP_PAIRS:
        closed[low] = closed[up]
    t = MotionTransfer(closed)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(open_mouth(astronaut_landmarks, 0.3))
    gap = (out[14, 1] - out[13, 1]) / L.iod(closed)
    assert 0.22 < gap < 0.38


def test_blink_closes_wider_portrait_eyes_fully(astronaut_landmarks):
    portrait = astronaut_landmarks.copy()
    for up, _ in L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS:  # portrait eyes 50% wider open
        portrait[up, 1] -= 0.5 * (astronaut_landmarks[_, 1] - astronaut_landmarks[up, 1])
    t = MotionTransfer(portrait)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(close_eyes(astronaut_landmarks))
    gaps = lid_gaps(face_frame(portrait).to_face(out))  # in IOD units
    assert gaps.max() <= MotionConfig().min_gap + 1e-4
    assert (gaps > 0).all()


def test_narrow_eyes_widen_as_far_as_the_drivers(astronaut_landmarks):
    """Lids rise by the driver's own travel: a portrait whose eyes are half as open as the
    driver's widens them by as much (in IOD), not by half as much."""
    narrow, wide = astronaut_landmarks.copy(), astronaut_landmarks.copy()
    for up, low in L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS:
        gap = astronaut_landmarks[low, 1] - astronaut_landmarks[up, 1]
        narrow[up, 1] += 0.5 * gap
        wide[up, 1] -= 0.3 * gap
    t = MotionTransfer(narrow)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(wide)
    p_frame, d_frame = face_frame(narrow), face_frame(astronaut_landmarks)
    rise = lid_gaps(p_frame.to_face(out)) - lid_gaps(p_frame.to_face(narrow))
    driver_rise = lid_gaps(d_frame.to_face(wide)) - lid_gaps(d_frame.to_face(astronaut_landmarks))
    ratio = rise / driver_rise
    assert ratio.min() > 0.95 and ratio.max() < 1.3  # the blink floor's remap adds up to 1/0.85
    closed = t.transfer(close_eyes(astronaut_landmarks))  # and they still shut
    assert lid_gaps(p_frame.to_face(closed)).max() <= MotionConfig().min_gap + 1e-4


def test_lids_and_lips_never_cross(astronaut_landmarks, transfer):
    driver = astronaut_landmarks.copy()
    for up, low in L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS + L.LIP_PAIRS:
        driver[up, 1], driver[low, 1] = driver[low, 1] + 5, driver[up, 1] - 5  # crossed
    face = face_frame(astronaut_landmarks).to_face(transfer.transfer(driver))
    assert (lid_gaps(face) > 0).all() and (lip_gaps(face) > 0).all()


@pytest.mark.parametrize("rest_gap", [0.0, 0.004])
def test_closed_lips_stay_as_close_as_the_portraits_own(astronaut_landmarks, rest_gap):
    """A portrait whose lips rest closer than min_gap keeps them that close while the driver's
    lips are shut (held at min_gap, a closed mouth stood a pixel or two parted), and
    lips that touch keep closed_lip_gap: they never cross."""
    cfg = MotionConfig()
    frame = face_frame(astronaut_landmarks)  # lips do not move it

    def with_lip_gap(gap: float) -> np.ndarray:
        face = frame.to_face(astronaut_landmarks.astype(np.float64))
        for up, low in L.LIP_PAIRS:
            face[low, 1] = face[up, 1] + gap
        return frame.to_image(face).astype(np.float32)

    portrait = with_lip_gap(rest_gap)
    driver = with_lip_gap(0.0)  # the driver presses his lips together
    t = MotionTransfer(portrait, cfg)
    t.calibrate(astronaut_landmarks)
    gaps = lip_gaps(face_frame(portrait).to_face(t.transfer(driver)))
    assert gaps.min() >= cfg.closed_lip_gap - 1e-6
    assert gaps.max() <= max(rest_gap, cfg.closed_lip_gap) + 1e-3 < cfg.min_gap


def test_head_turn_transfers_with_pose_and_not_without(astronaut_landmarks):
    turned = rotate_yaw(astronaut_landmarks, 15)
    with_pose = MotionTransfer(astronaut_landmarks)
    with_pose.calibrate(astronaut_landmarks)
    yaw = rotation_to_euler(
        fit_head_pose(astronaut_landmarks, with_pose.transfer(turned)).rotation
    )[0]
    assert abs(yaw - 15) < 1.5
    no_pose = MotionTransfer(astronaut_landmarks, MotionConfig(head_pose=False))
    no_pose.calibrate(astronaut_landmarks)
    out = no_pose.transfer(turned)
    assert np.abs(out[L.RIGID] - astronaut_landmarks[L.RIGID]).max() < 0.05 * L.iod(
        astronaut_landmarks
    )


def test_a_leaning_portrait_turns_as_the_camera_sees_the_driver_turn(astronaut_landmarks):
    """A portrait whose head leans (roll 20°, pitch 10°) and an upright driver who turns 12°
    about the camera's vertical axis: the portrait turns about the same axis, not its own
    (face frame to face frame, the turn came out as yaw 11.05°, pitch −4.27°, roll 1.55°)."""
    portrait = turn_head(astronaut_landmarks, 0, 10, 20)
    t = MotionTransfer(portrait)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(turn_head(astronaut_landmarks, 12))
    yaw, pitch, roll = rotation_to_euler(fit_head_pose(portrait, out).rotation)
    assert abs(yaw - 12) < 0.3 and abs(pitch) < 0.3 and abs(roll) < 0.3


def test_the_portraits_lips_keep_their_own_thickness(astronaut_landmarks):
    """The driver presses his closed lips thin (each outer lip point 40 % of the way to the
    inner line): the portrait's lips keep their thickness; with lip_thickness=1 they thin
    as his did."""
    outer, inner = np.array(L.LIPS_OUTER), np.array(L.LIPS_INNER)
    pressed = astronaut_landmarks.copy()
    pressed[outer, :2] += 0.4 * (pressed[inner, :2] - pressed[outer, :2])

    def thickness(lm: np.ndarray) -> float:
        return float(np.linalg.norm(lm[outer, :2] - lm[inner, :2], axis=1).sum())

    kept = {}
    for k in (0.0, 1.0):
        t = MotionTransfer(astronaut_landmarks, MotionConfig(lip_thickness=k))
        t.calibrate(astronaut_landmarks)
        kept[k] = thickness(t.transfer(pressed)) / thickness(astronaut_landmarks)
    assert abs(kept[0.0] - 1.0) < 0.03
    assert abs(kept[1.0] - 0.6) < 0.05


def test_opening_lips_carry_their_outline_with_them(astronaut_landmarks):
    """The driver's mouth opens: the portrait's upper lip's outline rises with its inner
    edge and the lower one's drops with it, so the lips open without thinning."""
    t = MotionTransfer(astronaut_landmarks)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(open_mouth(astronaut_landmarks, 0.3))
    rise_outer = astronaut_landmarks[0, 1] - out[0, 1]  # upper lip, outer edge
    rise_inner = astronaut_landmarks[13, 1] - out[13, 1]
    drop_outer = out[17, 1] - astronaut_landmarks[17, 1]  # lower lip, outer edge
    drop_inner = out[14, 1] - astronaut_landmarks[14, 1]
    assert drop_inner > 0.1 * L.iod(astronaut_landmarks)
    assert abs(rise_outer - rise_inner) < 0.01 * L.iod(astronaut_landmarks)
    assert abs(drop_outer - drop_inner) < 0.01 * L.iod(astronaut_landmarks)


def _lower_face_stretched(lm: np.ndarray, factor: float) -> np.ndarray:
    """lm with everything below the nose factor × as far from it."""
    out = lm.copy()
    below_nose = out[:, 1] > out[2, 1]
    out[below_nose, 1] = out[2, 1] + factor * (out[below_nose, 1] - out[2, 1])
    return out


def _opened(out: np.ndarray, face: np.ndarray) -> float:
    """How much wider out's mouth is than face's, in face's IODs."""
    return float((out[14, 1] - out[13, 1] - (face[14, 1] - face[13, 1])) / L.iod(face))


def test_big_jawed_driver_is_scaled_to_the_portrait(astronaut_landmarks):
    """A driver whose lower face is 1.5× longer opens its mouth by 0.3 of its IOD: on the
    portrait the opening is scaled down by the ratio of the faces' proportions."""
    driver = _lower_face_stretched(astronaut_landmarks, 1.5)
    t = MotionTransfer(astronaut_landmarks)
    t.calibrate(driver)
    opened = _opened(t.transfer(open_mouth(driver, 0.3)), astronaut_landmarks)
    assert 0.15 < opened < 0.25  # ≈ 0.3 / 1.5, not 0.3


def test_a_longer_chin_opens_the_mouth_at_most_a_little_wider(astronaut_landmarks):
    """A portrait whose lower face is 1.5× as long as the driver's: its mouth opens by
    max_opening_scale × the driver's opening (in IODs), not 1.5×; its chin still drops
    with the opening."""
    portrait = _lower_face_stretched(astronaut_landmarks, 1.5)
    t = MotionTransfer(portrait)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(open_mouth(astronaut_landmarks, 0.3))
    assert _opened(out, portrait) == pytest.approx(0.3 * t.config.max_opening_scale, abs=0.03)
    assert (out[152, 1] - portrait[152, 1]) / L.iod(portrait) > 0.15


_BROWS = L.RIGHT_BROW + L.LEFT_BROW


def _brows_nearer_the_eyes(lm: np.ndarray, factor: float) -> np.ndarray:
    """lm with each brow factor × as high over its eye's upper lid, along the face."""
    frame = face_frame(lm)
    face = frame.to_face(lm.astype(np.float64))
    for brow, pairs in ((L.RIGHT_BROW, L.RIGHT_LID_PAIRS), (L.LEFT_BROW, L.LEFT_LID_PAIRS)):
        lid = face[[upper for upper, _ in pairs], 1].mean()
        face[brow, 1] = lid - factor * (lid - face[brow, 1])
    return frame.to_image(face)


def _brows_raised(lm: np.ndarray, by: float) -> np.ndarray:
    """lm with the brows by IODs higher up the face."""
    frame = face_frame(lm)
    face = frame.to_face(lm.astype(np.float64))
    face[_BROWS, 1] -= by
    return frame.to_image(face)


def _brow_rise(out: np.ndarray, face: np.ndarray) -> float:
    """How far out's brows stand above face's, along face's face frame, in its IODs."""
    frame = face_frame(face)
    return float((frame.to_face(face)[_BROWS, 1] - frame.to_face(out)[_BROWS, 1]).mean())


def test_brows_rise_in_proportion_to_how_high_they_stand(astronaut_landmarks):
    """A driver raising her brows by 0.1 IOD: a portrait whose brows stand as high over its
    eyes raises them as far; one whose brows stand 0.6 as high (the Mona Lisa's against
    woman_long_expressive's) raises them 0.6 as far, and the rest of its face as the other."""
    raised = _brows_raised(astronaut_landmarks, 0.1)
    same = MotionTransfer(astronaut_landmarks)
    same.calibrate(astronaut_landmarks)
    assert _brow_rise(same.transfer(raised), astronaut_landmarks) == pytest.approx(0.1, abs=0.005)
    low = _brows_nearer_the_eyes(astronaut_landmarks, 0.6)
    t = MotionTransfer(low)
    t.calibrate(astronaut_landmarks)
    out = t.transfer(raised)
    assert _brow_rise(out, low) == pytest.approx(0.06, abs=0.005)
    others = np.setdiff1d(np.arange(478), _BROWS)
    assert np.abs(out[others] - low[others]).max() < 0.002 * L.iod(low)


def test_states_blend_towards_neutral(transfer, astronaut_landmarks):
    state = transfer.measure(open_mouth(rotate_yaw(astronaut_landmarks, 10), 0.3))
    half = state.blend(MotionState.neutral(), 0.5)
    assert np.allclose(half.delta, 0.5 * state.delta)
    assert (
        abs(rotation_to_euler(half.rotation)[0] - 0.5 * rotation_to_euler(state.rotation)[0]) < 0.5
    )


def test_absolute_mode_returns_the_driver(astronaut_landmarks):
    t = MotionTransfer(astronaut_landmarks, MotionConfig(mode="absolute"))
    driver = open_mouth(astronaut_landmarks, 0.2)
    assert np.array_equal(t.transfer(driver), driver)


def test_measure_needs_calibration(astronaut_landmarks):
    with pytest.raises(RuntimeError):
        MotionTransfer(astronaut_landmarks).measure(astronaut_landmarks)
