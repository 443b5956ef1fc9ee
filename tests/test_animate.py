import numpy as np
import pytest

from streamer import landmarks as L
from streamer.animate import AnimateOptions, Animator
from streamer.portrait import EnrollConfig, enroll_images
from streamer.tracker import FaceTracker
from streamer.video_io import read_video_frames
from tests.helpers import open_mouth


def _mouth(lm):
    return np.linalg.norm(lm[13, :2] - lm[14, :2]) / L.iod(lm)


def test_a_real_clip_animates_the_portrait(data_dir):
    clip = data_dir / "driving" / "woman_long_expressive.mp4"
    frames = list(read_video_frames(clip, 90))
    portrait = enroll_images([frames[0]], EnrollConfig(crop_size=256))
    anim = Animator(portrait, AnimateOptions())
    outs = [anim.process(f) for f in frames]
    anim.close()
    assert all(o.shape == frames[0].shape for o in outs)
    assert np.abs(outs[60].astype(int) - outs[0].astype(int)).mean() > 1.0  # it moves
    with FaceTracker(video=True) as a, FaceTracker(video=True) as b:
        driver = [_mouth(a.detect(f)) for f in frames]
        output = [_mouth(b.detect(o)) for o in outs]
    assert np.corrcoef(driver, output)[0, 1] > 0.9  # the mouth follows the driver


def test_face_lost_eases_to_neutral_and_recovers(astronaut_portrait):
    """No face for a second: the avatar eases back to its neutral face (it does not freeze
    with the mouth open, nor jump), then follows again when the face returns."""
    anim = Animator(astronaut_portrait, AnimateOptions(fps=30))
    neutral = astronaut_portrait.crop_landmarks
    driver = astronaut_portrait.landmarks
    anim.target_landmarks(driver)  # calibrates on the neutral driver
    for _ in range(10):
        opened = anim.target_landmarks(open_mouth(driver, 0.3))
    assert _mouth(opened) > _mouth(neutral) + 0.2
    lost = [anim.target_landmarks(None) for _ in range(30)]
    steps = [np.abs(b - a)[:, :2].max() for a, b in zip([opened] + lost, lost, strict=False)]
    assert max(steps) < 0.1 * L.iod(neutral)  # no jump
    assert abs(_mouth(lost[-1]) - _mouth(neutral)) < 0.02  # back to neutral after 1 s
    back = [anim.target_landmarks(open_mouth(driver, 0.3)) for _ in range(12)]
    jumps = [np.abs(b - a)[:, :2].max() for a, b in zip(lost[-1:] + back, back, strict=False)]
    assert max(jumps) < 0.1 * L.iod(neutral)
    assert _mouth(back[-1]) > _mouth(neutral) + 0.2  # following again


def test_a_face_far_smaller_than_at_rest_rests_the_avatar(astronaut_portrait):
    """The person steps far back (a face the tracker's look closer finds at 0.3× its
    resting size): the avatar eases to rest, as where no face is seen, and says why, instead
    of shrinking the portrait into its background; at 0.7× it follows the face."""
    anim = Animator(astronaut_portrait, AnimateOptions(fps=30))
    neutral = astronaut_portrait.crop_landmarks
    driver = astronaut_portrait.landmarks
    anim.target_landmarks(driver)  # calibrates on the neutral driver

    def stepped_back(scale: float) -> np.ndarray:
        centre = driver[L.RIGID].mean(axis=0)
        return (centre + scale * (open_mouth(driver, 0.3) - centre)).astype(np.float32)

    for _ in range(10):
        opened = anim.target_landmarks(stepped_back(0.7))
    assert _mouth(opened) > _mouth(neutral) + 0.2 and anim.status() is None
    assert L.iod(opened) < 0.8 * L.iod(neutral)  # it follows the step back that far
    far = [anim.target_landmarks(stepped_back(0.3)) for _ in range(30)]
    steps = [np.abs(b - a)[:, :2].max() for a, b in zip([opened] + far, far, strict=False)]
    assert max(steps) < 0.1 * L.iod(neutral)  # eased, no jump
    assert abs(_mouth(far[-1]) - _mouth(neutral)) < 0.02
    assert abs(L.iod(far[-1]) / L.iod(neutral) - 1.0) < 0.02  # at its own size
    assert "0.3× its resting size" in (anim.status() or "")
    anim.target_landmarks(stepped_back(0.7))
    assert anim.status() is None


def test_idle_blinks_while_no_face(astronaut_portrait):
    anim = Animator(astronaut_portrait, AnimateOptions(fps=30, idle_blink_seconds=1.0))
    anim.target_landmarks(astronaut_portrait.landmarks)
    pairs = np.array(L.RIGHT_LID_PAIRS)
    gaps = [np.abs(t[pairs[:, 1], 1] - t[pairs[:, 0], 1]).mean()
            for t in (anim.target_landmarks(None) for _ in range(90))]
    assert min(gaps) < 0.3 * max(gaps)  # at least one blink in 3 s


def test_switching_portrait_keeps_the_neutral(astronaut_portrait, astronaut_bgr):
    other = enroll_images([astronaut_bgr[:, ::-1].copy()], EnrollConfig(crop_size=256))
    anim = Animator(astronaut_portrait, AnimateOptions())
    anim.target_landmarks(astronaut_portrait.landmarks)
    anim.set_portrait(other)
    out = anim.render_landmarks(astronaut_portrait.landmarks)
    assert out.shape == other.image.shape
    anim.set_pose_transfer(False)
    assert anim.options.motion.head_pose is False


def test_an_avatar_made_beside_the_frames_switches_as_the_portrait_would(
        astronaut_portrait, astronaut_bgr, monkeypatch):
    """make_avatar does the slow part of a switch (the renderer, the turn-limit search) on
    another thread while frames go on; set_portrait then only swaps it in, and renders what
    a switch to the portrait itself renders. An avatar is set once, on its own animator."""
    import threading

    import streamer.animate as animate

    other = enroll_images([astronaut_bgr[:, ::-1].copy()], EnrollConfig(crop_size=256))
    driver = open_mouth(astronaut_portrait.landmarks, 0.3)
    anim = Animator(astronaut_portrait, AnimateOptions())
    anim.target_landmarks(astronaut_portrait.landmarks)
    made: list[object] = []
    maker = threading.Thread(target=lambda: made.append(anim.make_avatar(other)))
    maker.start()
    frames = 0
    while maker.is_alive():  # frames go on meanwhile, with the portrait they had
        assert anim.render_landmarks(driver).shape == astronaut_portrait.image.shape
        frames += 1
    maker.join()
    assert frames > 0
    direct = Animator(astronaut_portrait, AnimateOptions())  # the same frames, switched in place
    direct.target_landmarks(astronaut_portrait.landmarks)
    for _ in range(frames):
        direct.render_landmarks(driver)
    direct.set_portrait(other)
    expected = direct.render_landmarks(driver)
    avatar = made[0]
    assert isinstance(avatar, animate.Avatar) and avatar.transfer.turn_limits is not None
    anim.set_pose_transfer(False)  # switched while the avatar was made: it still counts
    anim.set_pose_transfer(True)
    # the swap makes nothing: no renderer, no limit search
    monkeypatch.setattr(animate, "create_renderer", lambda *a: pytest.fail("made again"))
    monkeypatch.setattr(animate, "find_turn_limits", lambda *a: pytest.fail("searched again"))
    anim.set_portrait(avatar)
    assert anim.portrait is other and anim.turn_limits == direct.turn_limits
    assert np.array_equal(anim.render_landmarks(driver), expected)
    with pytest.raises(ValueError, match="set once"):
        anim.set_portrait(avatar)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="set once"):
        direct.set_portrait(anim.make_avatar(astronaut_portrait))


@pytest.mark.parametrize("crop", [256, 512])
def test_crop_only_output(astronaut_portrait, astronaut_bgr, crop):
    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=crop))
    anim = Animator(portrait, AnimateOptions(full_frame=False))
    assert anim.render_landmarks(portrait.landmarks).shape == (crop, crop, 3)


def test_steady_calibration_waits_for_a_still_face(astronaut_portrait):
    """Live mode: while the driver moves, the avatar holds its rest pose; once the face holds
    still for steady_frames frames, that is the neutral, and motion is measured from it."""
    anim = Animator(astronaut_portrait, AnimateOptions(calibration="steady", steady_frames=5))
    driver = astronaut_portrait.landmarks
    rest = anim.target_landmarks(open_mouth(driver, 0.0))
    for i in range(10):  # the mouth keeps moving: no calibration
        out = anim.target_landmarks(open_mouth(driver, 0.05 * (i % 2) + 0.01 * i))
        assert np.abs(out - rest).max() < 0.01  # pixels
    assert not anim.calibrated
    for _ in range(6):  # still now
        anim.target_landmarks(driver)
    assert anim.calibrated
    opened = [anim.target_landmarks(open_mouth(driver, 0.3)) for _ in range(5)][-1]
    assert _mouth(opened) > _mouth(rest) + 0.2
    anim.recalibrate()  # waiting again: the avatar eases back to rest while the face moves
    assert not anim.calibrated
    moving = [anim.target_landmarks(open_mouth(driver, 0.3 + 0.02 * (i % 2))) for i in range(40)]
    assert abs(_mouth(moving[-1]) - _mouth(rest)) < 0.02


def test_steady_calibration_takes_a_face_at_rest_from_someone_who_talks(astronaut_portrait):
    """Live, someone already talking when the stream starts: a pause with the mouth open is
    still, but not a resting face, so it is not taken; one with it shut is. Talking on till
    the timeout, the latest shut face seen is taken, not the last frames (half of them open:
    a neutral that made every shut mouth later a smaller one than the portrait's own)."""
    driver = astronaut_portrait.landmarks
    rest = astronaut_portrait.crop_landmarks

    def talking(frames: int, anim: Animator) -> None:
        for i in range(frames):
            anim.target_landmarks(open_mouth(driver, 0.15 * (i % 4 < 2)))

    anim = Animator(astronaut_portrait, AnimateOptions(calibration="steady"))
    talking(20, anim)
    for _ in range(12):  # a pause mid-word: still, the mouth open
        anim.target_landmarks(open_mouth(driver, 0.1))
    assert not anim.calibrated
    for _ in range(10):  # a pause with the mouth shut
        anim.target_landmarks(driver)
    assert anim.calibrated
    shut = [anim.target_landmarks(driver) for _ in range(5)][-1]
    assert abs(_mouth(shut) - _mouth(rest)) < 0.01

    anim = Animator(astronaut_portrait, AnimateOptions(calibration="steady"))
    talking(71, anim)  # past the 2 s timeout, open at its end
    assert anim.calibrated
    shut = [anim.target_landmarks(driver) for _ in range(5)][-1]
    opened = [anim.target_landmarks(open_mouth(driver, 0.3)) for _ in range(5)][-1]
    assert abs(_mouth(shut) - _mouth(rest)) < 0.01
    assert _mouth(opened) > _mouth(rest) + 0.2


def test_wall_clock_counts_the_frames_a_loaded_machine_skipped(astronaut_portrait):
    """Live, a loaded machine processes every third camera frame. A face that moves a little
    between camera frames (0.015 IOD per frame at 30 fps: still) moves 0.045 IOD between
    processed ones: counted per processed frame it is never still, and the avatar rests
    until the timeout (60 processed frames, 6 s); on the wall clock it is still, and the
    timeout is 2 s whatever the rate."""
    driver = astronaut_portrait.landmarks
    drift = 0.045 * L.iod(driver)

    def run(clock: str, moving: bool) -> int:
        """Processed frames until calibrated."""
        now = [0.0]

        def tick() -> float:
            now[0] += 3.0 / 30.0
            return now[0]

        anim = Animator(astronaut_portrait, AnimateOptions(fps=30, calibration="steady",
                                                           clock=clock), clock=tick)
        for i in range(100):
            frame = driver.copy()
            frame[:, 0] += drift * i if not moving else drift * i * (1 + i % 2)
            anim.target_landmarks(frame)
            if anim.calibrated:
                return i + 1
        return 100

    assert run("wall", moving=False) == 8  # still at once
    assert run("stream", moving=False) == 8 + 60 - 1  # never still: waits out the timeout
    assert run("wall", moving=True) == 8 + 20 - 1  # the timeout is 2 s: 20 frames here


def test_prepared_frames_finish_on_another_thread_as_process_makes_them(data_dir):
    """The live pipeline prepares frame n + 1 while it finishes frame n on another thread:
    no state may be shared between the halves (e.g. a reused warp buffer)."""
    from concurrent.futures import ThreadPoolExecutor

    from streamer.frames import StagedProcessor

    frames = list(read_video_frames(data_dir / "driving" / "woman_long_expressive.mp4", 24))
    portrait = enroll_images([frames[0]], EnrollConfig(crop_size=256))
    serial, staged = Animator(portrait), Animator(portrait)
    assert isinstance(staged, StagedProcessor)
    expected = [serial.process(f) for f in frames]
    got = []
    with ThreadPoolExecutor(1) as finisher:
        pending = None
        for f in frames:
            prepared = staged.prepare(f)  # while the previous frame finishes
            if pending is not None:
                got.append(pending.result())
            pending = finisher.submit(staged.finish, prepared)
        got.append(pending.result())
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
    serial.close()
    staged.close()


def test_another_person_taking_over_is_measured_against_their_own_neutral(
        astronaut_portrait, two_faces, caplog):
    """The followed face leaves and, after the tracker's wait, another face is taken up: the
    avatar waits for the new face to hold still and takes it as the neutral. Measured against
    the first person's neutral, the second's resting face moved the avatar off its rest."""
    from streamer.renderer import RendererConfig
    from streamer.tracker import TrackerConfig

    options = AnimateOptions(calibration="steady", steady_frames=3, full_frame=False,
                             tracker=TrackerConfig(switch_after=2),
                             renderer=RendererConfig(name="warp"))
    anim = Animator(astronaut_portrait, options)
    first, second = two_faces(240, 220), two_faces(0, 220)  # left followed; then right alone
    calibrated, outs = [], []
    with caplog.at_level("INFO", logger="streamer.animate"):
        for frame in [first] * 4 + [second] * 6:
            outs.append(anim.process(frame))
            calibrated.append(anim.calibrated)
    anim.close()
    assert [r.message for r in caplog.records if "another is in view" in r.message]
    # 3 still frames to calibrate; 2 frames without the followed face; the switch; 3 still
    assert calibrated == [False, False, True, True, True, True, False, False, True, True]
    rest, after = outs[3].astype(int), outs[-1].astype(int)
    assert np.abs(rest - after).mean() < 0.5  # the second person at rest: the avatar at rest


def test_status_says_what_the_avatar_waits_for(astronaut_portrait, astronaut_bgr, caplog):
    """The preview tells the person why the avatar rests: no face, then the resting face
    being taken (steady calibration), then nothing while it follows."""
    options = AnimateOptions(calibration="steady", steady_frames=3, full_frame=False)
    anim = Animator(astronaut_portrait, options)
    assert anim.status() == "no face in view"  # nothing seen yet
    said = []
    with caplog.at_level("INFO", logger="streamer.animate"):
        for image in [np.zeros_like(astronaut_bgr)] + [astronaut_bgr] * 4:
            anim.process(image)
            said.append(anim.status())
    anim.close()
    assert [r.message for r in caplog.records] == [
        "resting face taken: the avatar follows the face now"]  # said once, in the terminal
    rests = "no face in view"
    holds = "hold still: taking your resting face"
    assert said == [rests, holds, holds, None, None]
