import numpy as np
import pytest

from streamer import landmarks as L
from streamer.references import (
    FADE_FRAMES,
    HYSTERESIS,
    ReferencePicker,
    eye_distances,
    lips_patch,
    mouth_distances,
    shot_distances,
)


def _face(shift: float = 0.0, mouth: float = 0.0) -> np.ndarray:
    """(478, 3) landmarks: a fixed random face, moved sideways, with the lips (13, 14 and
    their neighbours) opened by `mouth` pixels; outer eye corners 100 px apart (IOD)."""
    lm = np.random.default_rng(0).uniform(100, 300, (478, 3)).astype(np.float32)
    lm[33, :2], lm[263, :2] = (150, 200), (250, 200)
    lm[:, 0] += shift
    lm[14:18, 1] += mouth
    return lm


def test_distance_is_mean_landmark_distance_in_iod():
    shots = np.stack([_face(), _face(shift=10.0), _face(shift=-50.0)])
    d = shot_distances(_face(), shots)
    assert d == pytest.approx([0.0, 0.1, 0.5])


def _settle(picker: ReferencePicker, target: np.ndarray) -> list[tuple[int, float]]:
    """Pick for the same target until any cross-fade is over."""
    for _ in range(FADE_FRAMES):
        picked = picker.pick(target)
    return picked


def test_picks_the_nearest_shot_and_holds_it_against_small_gains():
    shots = np.stack([_face(), _face(mouth=40.0)])
    picker = ReferencePicker(shots)
    assert picker.pick(_face(mouth=2.0)) == [(0, 1.0)]
    assert _settle(picker, _face(mouth=38.0)) == [(1, 1.0)]  # start from the open shot
    # Just past the middle, the other shot is nearer, but not by enough to switch.
    assert picker.pick(_face(mouth=19.0)) == [(1, 1.0)]
    d = shot_distances(_face(mouth=19.0), shots)
    assert d[0] < d[1] and d[0] > HYSTERESIS * d[1]
    assert _settle(picker, _face(mouth=1.0)) == [(0, 1.0)]
    assert picker.current == 0


def test_a_switch_cross_fades_from_the_old_shot_to_the_new():
    picker = ReferencePicker(np.stack([_face(), _face(mouth=40.0)]))
    picker.pick(_face())
    weights = [dict(picker.pick(_face(mouth=40.0))) for _ in range(FADE_FRAMES + 2)]
    new = [w[1] for w in weights]
    assert new == pytest.approx([i / FADE_FRAMES for i in range(1, FADE_FRAMES)] + [1.0] * 3)
    assert all(sum(w.values()) == pytest.approx(1.0) for w in weights)
    assert all(len(w) == 1 for w in weights[FADE_FRAMES - 1:])  # one warp once it is over


def test_one_shot_is_always_picked_and_none_is_refused():
    picker = ReferencePicker(_face()[None])
    assert picker.pick(_face(shift=90.0, mouth=30.0)) == [(0, 1.0)]
    with pytest.raises(ValueError):
        ReferencePicker(np.zeros((0, 478, 3)))


def test_mouth_distance_is_the_mouths_shape_wherever_the_face_is():
    open_elsewhere, closed_here = _face(shift=60.0, mouth=30.0), _face()
    shots = np.stack([open_elsewhere, closed_here])
    target = _face(mouth=30.0)
    assert np.argmin(shot_distances(target, shots)) == 1  # the whole face: the one in place
    d = mouth_distances(target, shots)
    assert d[0] == pytest.approx(0.0, abs=1e-6) and d[1] > 0.01  # the mouth: the open one
    picker = ReferencePicker(shots, mouth_distances)
    assert _settle(picker, target) == [(0, 1.0)]
    assert _settle(picker, _face(shift=-20.0)) == [(1, 1.0)]


def test_the_lips_patch_covers_the_lips_and_fades_out():
    lm = _face()
    lm[L.LIPS_OUTER, :2] = [200, 260] + 20 * np.stack(
        [np.cos(np.linspace(0, 2 * np.pi, len(L.LIPS_OUTER), endpoint=False)),
         0.5 * np.sin(np.linspace(0, 2 * np.pi, len(L.LIPS_OUTER), endpoint=False))], axis=1)
    (x0, y0, x1, y1), alpha = lips_patch(lm, 512, margin=0.15, feather=0.05)
    assert alpha.shape == (y1 - y0, x1 - x0)
    assert alpha[260 - y0, 200 - x0] == pytest.approx(1.0)  # the lips' middle
    assert alpha[260 - y0, 200 + 20 + 15 - 1 - x0] > 0.5  # the margin: 0.15 IOD = 15 px
    assert alpha[0].max() < 0.01 and alpha[:, 0].max() < 0.01  # faded out at the box edge
    assert lips_patch(lm + 1000, 512, 0.15, 0.05) is None  # the mouth left the crop


def _blinking(lm: np.ndarray) -> np.ndarray:
    """The face with both upper lids down on the lower ones."""
    lm = lm.copy()
    for upper, lower in L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS:
        lm[upper, :2] = lm[lower, :2]
    return lm


def test_eye_distance_finds_the_blink_wherever_the_face_is():
    shots = np.stack([_face(), _blinking(_face(shift=60.0))])
    target = _blinking(_face())
    assert np.argmin(shot_distances(target, shots)) == 0
    d = eye_distances(target, shots)
    assert d[1] == pytest.approx(0.0, abs=1e-6) and d[0] > 0.01
