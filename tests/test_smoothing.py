import numpy as np

from streamer.smoothing import OneEuroFilter, SmoothingConfig, smooth_track

DT = 1 / 30


def test_still_face_jitter_is_reduced():
    """Tracker jitter of 0.25% IOD on a still face is cut by at least a quarter (the filter
    is tuned for no lag; see SmoothingConfig)."""
    rng = np.random.default_rng(0)
    f = OneEuroFilter()
    base = np.zeros((10, 2))
    out = [f(base + rng.normal(scale=0.2, size=base.shape), DT, unit=80.0) for _ in range(120)]
    assert np.std(out[30:]) < 0.75 * 0.2


def test_fast_motion_does_not_lag():
    """A mouth opening by 0.4 IOD in 3 frames: the filter is within 10% after 2 more frames,
    less than half as far behind as a plain low-pass at the still-face cutoff."""
    iod = 60.0
    track = np.concatenate([np.zeros(20), np.linspace(0, 0.4 * iod, 4)[1:], np.full(10, 0.4 * iod)])
    adaptive, plain = OneEuroFilter(), OneEuroFilter(SmoothingConfig(beta=0.0))
    got_a = [adaptive(np.array([[v]]), DT, unit=iod)[0, 0] for v in track]
    got_p = [plain(np.array([[v]]), DT, unit=iod)[0, 0] for v in track]
    k = 20 + 3 + 2
    assert abs(got_a[k] - 0.4 * iod) < 0.10 * 0.4 * iod
    assert abs(got_a[k] - 0.4 * iod) < 0.5 * abs(got_p[k] - 0.4 * iod)


def test_disabled_and_reset():
    x = np.ones((3, 2))
    assert OneEuroFilter(SmoothingConfig(enabled=False))(x, DT) is x
    f = OneEuroFilter()
    f(x, DT)
    f.reset()
    assert np.allclose(f(5 * x, DT), 5 * x)  # first sample after reset passes through


def _track(values: np.ndarray, iod: float = 60.0) -> list[np.ndarray]:
    """Landmark frames whose points all sit at x = value (eye corners IOD apart)."""
    frames = []
    for v in values:
        lm = np.zeros((478, 3), np.float32)
        lm[:, 0] = v
        lm[263, 0] = v + iod
        frames.append(lm)
    return frames


def test_offline_track_smoothing_has_no_lag():
    """A steady glide of 0.5 IOD per second: the live filter trails behind it, the offline
    forward-backward mean sits on it; and the jitter on a still face is cut as live."""
    t = np.arange(60) / 30
    glide = _track(30.0 * t)
    live = OneEuroFilter()
    lagged = [live(lm, DT, unit=60.0)[0, 0] for lm in glide]
    smooth = [lm[0, 0] for lm in smooth_track(glide, 30.0)]
    middle = slice(15, 45)
    lag_live = np.abs(np.array(lagged) - 30.0 * t)[middle].mean()
    lag_offline = np.abs(np.array(smooth) - 30.0 * t)[middle].mean()
    assert lag_live > 0.02 and lag_offline < 0.1 * lag_live
    rng = np.random.default_rng(0)
    still = _track(rng.normal(scale=0.2, size=120))
    assert np.std([lm[0, 0] for lm in smooth_track(still, 30.0)][10:-10]) < 0.75 * 0.2


def test_offline_track_smoothing_keeps_gaps_and_smooths_each_stretch_alone():
    a, b = _track(np.zeros(5)), _track(np.full(5, 100.0))
    out = smooth_track([*a, None, None, *b], 30.0)
    assert out[5] is None and out[6] is None
    assert np.allclose(out[4][0, 0], 0.0) and np.allclose(out[7][0, 0], 100.0)  # no bleed
    assert smooth_track([None], 30.0) == [None]
    raw = _track(np.arange(3.0))
    assert smooth_track(raw, 30.0, SmoothingConfig(enabled=False)) == raw
