from pathlib import Path

import numpy as np

from benchmarks.latency import (
    BenchConfig,
    FakeAnimator,
    crop_label,
    make_processor,
    switch_gaps,
)


def _config(portrait: Path, **kw) -> BenchConfig:
    return BenchConfig(Path("clip.mp4"), portrait, 1.0, "animator", 512, True, 0.0, (64, 48),
                       1.0, renderer="warp", **kw)


def test_an_enrolled_portrait_runs_with_its_own_shots_and_crop(tmp_path, astronaut_bgr):
    """`--portrait X.headcast` takes the file as enrolled (its K shots, its 256 crop, though
    the run's --crop-size says 512), and `--one-shot-per-frame` reaches the renderer."""
    from streamer.offline import open_portrait
    from streamer.portrait import EnrollConfig, enroll_images, save_portrait

    shifted = np.roll(astronaut_bgr, 6, axis=1)
    path = tmp_path / "two.headcast"
    save_portrait(enroll_images([astronaut_bgr, shifted], EnrollConfig(crop_size=256),
                                render_first=True), path)
    for features in (True, False):
        animator = make_processor(_config(path, feature_shots=features), 30.0,
                                  open_portrait(path))
        assert animator.portrait.crop_size == 256 and len(animator.portrait.references) == 1
        assert animator.options.renderer.feature_shots is features
    assert crop_label(animator, _config(path)) == "256, 2 shots"
    assert crop_label(FakeAnimator(512, 0.0), _config(tmp_path / "mona_lisa.jpg")) == "512"


def test_switch_gaps_take_the_longest_gap_after_each_switch():
    done = np.array([0.0, 0.1, 0.2, 0.9, 1.0, 1.1, 3.5, 3.6, 6.0, 6.1])
    near, away = switch_gaps(done, np.array([0.15, 3.0]))
    assert np.allclose(near, [0.7, 2.4])  # 0.2 → 0.9 after the first; 1.1 → 3.5 after the second
    assert np.allclose(np.sort(away), [0.1, 0.1, 2.4])  # 0 → 0.1, 3.6 → 6.0 (past 2 s), 6.0 → 6.1


def test_frames_offered_are_counted_from_the_run_not_from_the_enrollment(monkeypatch, capsys,
                                                                         data_dir):
    """The clip played as a camera from before the portrait was enrolled, so a slow
    enrollment's frames counted as offered: 150 in a 3 s run of a 30 fps clip, 85 of them
    "delivered" (56.7 %)."""
    import time

    import pyvirtualcam.camera

    import benchmarks.latency as B
    import streamer.offline

    # run() registers its null camera backend: in a copy, so no later test finds a camera
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", dict(pyvirtualcam.camera.BACKENDS))

    def slow_enrollment(path, config):  # type: ignore[no-untyped-def]
        time.sleep(1.5)
        return "portrait"

    monkeypatch.setattr(streamer.offline, "open_portrait", slow_enrollment)
    monkeypatch.setattr(B, "make_processor", lambda config, fps, portrait: FakeAnimator(64, 0.0))
    clip = data_dir / "driving" / "man_green_backdrop.mp4"  # 25 fps
    B.run(BenchConfig(clip, Path("p.jpg"), 1.0, "animator", 64, False, 0.0, (64, 48), 0.5))
    report = capsys.readouterr().out
    offered = int(report.split("frames offered")[1].split()[0])
    assert 5 <= offered <= 32, report  # 25 in 1 s; under load fewer (16 seen); not 60 or more
