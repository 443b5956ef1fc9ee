import numpy as np

from streamer import warp_inputs as W


def _points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fitted points (target, source) of a face-like set of 478 points at a 512 crop (a
    noisy three-lobed outline, not a real face's landmarks), moved a little."""
    rng = np.random.default_rng(seed)
    ring = np.linspace(0.0, 2.0 * np.pi, 478, endpoint=False)
    lm = np.stack([256 + 120 * np.cos(3 * ring) * np.cos(ring), 256 + 150 * np.sin(ring),
                   np.zeros(478)], 1) + rng.normal(0.0, 3.0, (478, 3))
    target = lm + rng.normal(0.0, 2.0, lm.shape)
    source = W.normalize(W.fit_points(lm, 512), 512)
    return W.normalize(W.target_fit_points(lm, target, 512), 512), source


def test_the_spline_solves_its_weighted_least_squares_with_side_conditions():
    targets, sources = _points()
    got = W.solve_tps(targets, sources).astype(np.float64)
    # the same problem written plainly: minimize Σ w_i |f(t_i) − s_i|² + λ·bending energy
    t = targets.astype(np.float64)
    c = t[W.CTRL_INDEX]
    d = np.linalg.norm(t[:, None] - c[None], axis=2)
    kernel = np.where(d > 0, d**2 * np.log(np.where(d > 0, d, 1.0) ** 2), 0.0)
    design = np.hstack([kernel, np.ones((len(t), 1)), t])
    weights = np.diag(W.FIT_WEIGHTS)
    n = W.NUM_CTRL
    side = np.hstack([np.ones((n, 1)), c])
    lhs = np.zeros((n + 6, n + 6))
    lhs[: n + 3, : n + 3] = design.T @ weights @ design
    lhs[:n, :n] += W.TPS_SMOOTHING * kernel[W.CTRL_INDEX]
    lhs[:n, n + 3:], lhs[n + 3:, :n] = side, side.T
    rhs = np.vstack([design.T @ weights @ sources, np.zeros((3, 2))])
    expected = np.linalg.solve(lhs, rhs)[: n + 3]
    mapped = lambda w: design @ w  # noqa: E731  # where the spline sends the fitted points
    assert np.abs(mapped(got) - mapped(expected)).max() * 256 < 0.01  # crop pixels (float32)
    assert np.abs(side.T @ got[:n]).max() < 1e-5  # the side conditions hold (float32)
    heavy = np.array(W.HEAVY)
    assert np.abs(mapped(got)[heavy] - sources[heavy]).max() * 256 < 1.0  # lips: where asked


def test_the_kernel_is_r2_log_r2_and_zero_at_its_centre():
    a = np.array([[0.0, 0.0], [0.3, -0.4], [1.0, 1.0]])
    b = np.array([[0.0, 0.0], [0.3, 0.0]])
    r2 = ((a[:, None] - b[None]) ** 2).sum(2)
    expected = np.where(r2 > 0, r2 * np.log(np.where(r2 > 0, r2, 1.0)), 0.0)
    assert np.allclose(W._tps_kernel(a, b), expected, rtol=1e-12, atol=1e-14)
    assert W._tps_kernel(a, b)[0, 0] == 0.0


def test_a_box_is_padded_whole_pixels_inside_the_crop():
    points = np.array([[10.2, 20.7], [30.5, 40.1]])
    assert W._box(points, 2.0, 64).tolist() == [8, 18, 33, 43]
    assert W._box(points, 15.0, 40).tolist() == [0, 5, 40, 40]  # clipped to the crop
    assert W._box(points + 100.0, 2.0, 64).tolist() == [0, 0, 1, 1]  # outside it
    assert W._box(points, 2.0, 64).dtype == np.int32
