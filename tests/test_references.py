import numpy as np
import pytest

from streamer.references import FADE_FRAMES, HYSTERESIS, ReferencePicker, shot_distances


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
