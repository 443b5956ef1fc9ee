"""benchmarks.protocol on tiny synthetic inputs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from benchmarks import protocol as P
from tests.helpers import rotation


def _face(seed: int = 0) -> np.ndarray:
    """(478, 3) float32 random 'face' cloud with the metric landmarks at known places.

    IOD = 100 px (33 at x=150, 263 at x=250, y=200); mouth gap 20 px; each eye
    10 px open and 40 px wide.
    """
    rng = np.random.default_rng(seed)
    lm = rng.uniform([100, 100, -50], [300, 350, 50], size=(478, 3)).astype(np.float32)
    lm[33] = (150, 200, 0)
    lm[263] = (250, 200, 0)
    lm[133] = (190, 200, 0)
    lm[362] = (210, 200, 0)
    lm[159], lm[145] = (170, 195, 0), (170, 205, 0)
    lm[386], lm[374] = (230, 195, 0), (230, 205, 0)
    lm[13], lm[14] = (200, 290, 0), (200, 310, 0)
    return lm


def _rotate(lm: np.ndarray, rot: np.ndarray, scale: float = 1.0, shift=(0, 0, 0)) -> np.ndarray:
    centre = lm.mean(axis=0)
    return ((lm - centre) @ rot.T * scale + centre + np.asarray(shift)).astype(np.float32)


# ---------------------------------------------------------------- landmark scalars


def test_iod_mouth_and_eyes_known_values():
    lm = _face()
    assert P.iod(lm) == pytest.approx(100.0)
    assert P.mouth_opening(lm) == pytest.approx(0.2)
    assert P.eye_openness(lm) == pytest.approx(0.25)


def test_eye_openness_averages_the_two_eyes():
    lm = _face()
    lm[386], lm[374] = (230, 190, 0), (230, 210, 0)  # left eye twice as open: 20/40
    assert P.eye_openness(lm) == pytest.approx((0.25 + 0.5) / 2)


def test_scalar_series_and_face_found_rate_handle_missing_faces():
    lms = [_face(), None, _face(1), None]
    series = P.scalar_series(lms, P.mouth_opening)
    assert np.isnan(series[1]) and np.isnan(series[3])
    assert series[0] == pytest.approx(0.2)
    assert P.face_found_rate(lms) == pytest.approx(0.5)
    assert P.face_found_rate([]) == 0.0


# ---------------------------------------------------------------- series statistics


def test_pearson_and_amplitude_ratio():
    d = np.sin(np.linspace(0, 6, 50))
    assert P.pearson_r(d, 0.5 * d + 3) == pytest.approx(1.0)
    assert P.pearson_r(d, -d) == pytest.approx(-1.0)
    assert P.amplitude_ratio(d, 0.5 * d + 3) == pytest.approx(0.5)


def test_series_statistics_drop_missing_frames():
    d = np.array([0.0, 1.0, 2.0, 3.0, np.nan])
    o = np.array([0.0, 2.0, np.nan, 6.0, 100.0])
    assert P.pearson_r(d, o) == pytest.approx(1.0)
    assert P.amplitude_ratio(d, o) == pytest.approx(2.0)


def test_series_statistics_undefined_for_flat_driver():
    assert math.isnan(P.pearson_r(np.ones(5), np.arange(5.0)))
    assert math.isnan(P.amplitude_ratio(np.ones(5), np.arange(5.0)))


def test_series_statistics_treat_a_barely_moving_driver_as_still():
    d = 0.3 + 1e-4 * np.sin(np.arange(20.0))  # a closed mouth: tracker jitter only
    o = np.arange(20.0)
    assert not math.isnan(P.pearson_r(d, o))
    assert math.isnan(P.pearson_r(d, o, min_std=0.005))
    assert math.isnan(P.amplitude_ratio(d, o, min_std=0.005))
    assert P.amplitude_ratio(10 * o, o, min_std=0.005) == pytest.approx(0.1)


# ---------------------------------------------------------------- head rotation


@pytest.mark.parametrize("angles", [(10, 0, 0), (0, -7, 0), (0, 0, 12), (15, -8, 5)])
def test_head_rotation_recovers_known_angles(angles):
    ref = _face()
    cur = _rotate(ref, rotation(*angles), scale=1.3, shift=(40, -20, 5))
    np.testing.assert_allclose(P.head_rotation(ref, cur), angles, atol=1e-3)


def test_yaw_is_about_the_image_y_axis():
    ref = _face()
    cur = _rotate(ref, rotation(20, 0, 0))
    # A turn about the vertical axis leaves y untouched and moves x and z.
    np.testing.assert_allclose(cur[:, 1], ref[:, 1], atol=1e-3)
    assert P.head_rotation(ref, cur)[0] == pytest.approx(20, abs=1e-3)


def test_kabsch_never_returns_a_reflection():
    ref = _face()
    mirrored = ref.copy()
    mirrored[:, 0] *= -1
    assert np.linalg.det(P.kabsch_rotation(ref, mirrored)) == pytest.approx(1.0)


def test_pose_error_known_offset_and_missing_frames():
    ref = _face()
    yaws = [0, 5, 10, 15]
    driver = [_rotate(ref, rotation(y, 0, 0)) for y in yaws]
    # The output lags 3° in yaw on every frame after the first: mean over 3 angles = 1°.
    output = [_rotate(ref, rotation(max(y - 3, 0) if y else 0, 0, 0)) for y in yaws]
    assert P.pose_error(driver, driver) == pytest.approx(0.0, abs=1e-6)
    assert P.pose_error(driver, output) == pytest.approx(1.0, abs=1e-4)
    # A wildly wrong output frame without a face in the driver is ignored.
    driver_gap = [*driver, None]
    output_gap = [*output, _rotate(ref, rotation(60, 0, 0))]
    assert P.pose_error(driver_gap, output_gap) == pytest.approx(1.0, abs=1e-4)


def test_pose_error_is_relative_to_each_sequence_reference():
    ref = _face()
    driver = [_rotate(ref, rotation(y, 0, 0)) for y in (0, 10)]
    # The output starts turned 30° away, then turns by the same 10°: no error.
    output = [_rotate(ref, rotation(30 + y, 0, 0)) for y in (0, 10)]
    assert P.pose_error(driver, output) == pytest.approx(0.0, abs=1e-4)


def test_pose_error_skips_to_first_frame_with_both_faces():
    ref = _face()
    driver = [None, ref, _rotate(ref, rotation(6, 0, 0))]
    output = [ref, ref, ref]
    assert P.pose_error(driver, output) == pytest.approx(2.0, abs=1e-4)
    assert math.isnan(P.pose_error([None], [ref]))


# ---------------------------------------------------------------- AKD


def test_akd_known_shift_in_iod_units():
    d = _face()
    shifted = d.copy()
    shifted[:, 0] += 3.0
    shifted[:, 1] += 4.0  # |(3, 4)| = 5 px = 0.05 IOD → AKD 5
    far = d + 1000.0  # frame 0 is skipped, so this must not count
    assert P.akd([d, d, d], [far, shifted, shifted]) == pytest.approx(5.0)


def test_akd_ignores_z_and_missing_frames():
    d = _face()
    o = d.copy()
    o[:, 2] += 500.0
    o[:, 0] += 10.0
    assert P.akd([d, d, None, d], [d, o, d, None]) == pytest.approx(10.0)
    assert math.isnan(P.akd([d, None], [d, d]))


# ---------------------------------------------------------------- regions and image metrics


def test_face_box_is_padded_and_clipped():
    lm = _face()
    lm[:468, :2] = np.clip(lm[:468, :2], [120, 150], [280, 330])
    box = P.face_box(lm, (1000, 1000, 3))
    x0, y0, x1, y1 = box
    assert (x0, y0) == (110, 140)  # min − 0.1 IOD (10 px)
    assert x1 >= 290 and y1 >= 340
    clipped = P.face_box(lm, (300, 250, 3))
    assert clipped[2] == 250 and clipped[3] == 300


def test_mouth_box_uses_lip_points_and_quarter_iod():
    lm = _face()
    for i in P.MOUTH_POINTS:
        lm[i] = (200, 300, 0)
    lm[61], lm[291] = (170, 300, 0), (230, 300, 0)
    x0, y0, x1, y1 = P.mouth_box(lm, (1000, 1000, 3))
    assert (x0, y0) == (145, 275)
    assert x1 in (255, 256) and y1 in (325, 326)


def test_psnr_identical_is_inf_and_known_error():
    rng = np.random.default_rng(0)
    a = rng.integers(20, 230, (40, 50, 3), dtype=np.uint8)
    box = (5, 5, 45, 35)
    assert P.psnr(a, a, box) == math.inf
    b = a + np.uint8(10)  # MSE = 100 everywhere
    assert P.psnr(a, b, box) == pytest.approx(10 * math.log10(255**2 / 100))
    # Only the box counts: damage outside it changes nothing.
    c = a.copy()
    c[:5] = 0
    assert P.psnr(a, c, box) == math.inf


def test_ssim_identical_is_one_and_noise_lowers_it():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    box = (8, 8, 56, 56)
    assert P.ssim(a, a, box) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert P.ssim(a, noisy, box) < 0.9


def test_ssim_matches_skimage_inside_the_image(astronaut_bgr):
    a = astronaut_bgr[100:260, 100:260]
    rng = np.random.default_rng(2)
    b = np.clip(a + rng.normal(0, 15, a.shape), 0, 255).astype(np.uint8)
    ga, gb = P._grey(a), P._grey(b)
    _, full = structural_similarity(
        ga,
        gb,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        full=True,
    )
    box = (20, 30, 120, 140)
    want = full[30:140, 20:120].mean()
    assert P.ssim(a, b, box) == pytest.approx(want, abs=1e-6)


def test_ssim_crop_equals_whole_image_map_at_edges(astronaut_bgr):
    a = astronaut_bgr
    b = np.roll(a, 3, axis=1)
    box = (0, 0, 90, 70)  # touches the image corner: the crop must reflect like the whole
    whole = P.ssim_map(P._grey(a), P._grey(b))[0:70, 0:90].mean()
    assert P.ssim(a, b, box) == pytest.approx(whole, abs=1e-9)


def test_image_scores_and_size_check(astronaut_bgr):
    lm = _face()
    scores = P.image_scores(astronaut_bgr, astronaut_bgr.copy(), lm)
    assert scores.face_psnr == math.inf and scores.mouth_ssim == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ"):
        P.image_scores(astronaut_bgr, astronaut_bgr[:100], lm)


def test_mean_psnr_caps_inf_and_skips_nan():
    assert P.mean_psnr([math.inf, 20.0, math.nan]) == pytest.approx((P.PSNR_CAP_DB + 20) / 2)
    assert math.isnan(P.mean_finite([math.nan]))


def test_the_benchmarks_name_what_they_cannot_find(tmp_path):
    """An unknown portrait or clip: a bare StopIteration (speed, figures) or a traceback
    after the portraits' work (quality, kshot); now one line naming those there."""
    import argparse

    from benchmarks.quality import at_least, clip_file, portrait_file

    (tmp_path / "portraits").mkdir()
    (tmp_path / "driving").mkdir()
    (tmp_path / "portraits" / "mona_lisa.jpg").write_bytes(b"")
    (tmp_path / "portraits" / "notes.txt").write_text("not a portrait")
    (tmp_path / "driving" / "talk.mp4").write_bytes(b"")
    assert portrait_file(tmp_path, "mona_lisa").name == "mona_lisa.jpg"
    with pytest.raises(SystemExit, match=r"no portrait 'einstein' .*\(there: mona_lisa\)"):
        portrait_file(tmp_path, "einstein")
    with pytest.raises(SystemExit, match=r"no portrait 'notes'"):
        portrait_file(tmp_path, "notes")
    assert clip_file(tmp_path, "talk").name == "talk.mp4"
    with pytest.raises(SystemExit, match=r"no clip 'walk' .*\(there: talk\)"):
        clip_file(tmp_path, "walk")
    assert at_least(1)("3") == 3 and at_least(0.1, float)("0.5") == 0.5
    for text in ("0", "-1", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            at_least(1, float)(text)
