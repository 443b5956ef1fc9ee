"""streamer/offline.py: shots taken from a video for `headcast enroll --from-video`."""

import cv2
import numpy as np
import pytest

from streamer.errors import NoFaceError
from streamer.offline import video_shots
from streamer.tracker import FaceTracker
from streamer.video_io import VideoWriter, read_video_frames


def test_video_shots_keep_the_clips_video_mode_landmarks(data_dir):
    """The shots' landmarks are the ones a driver track of the same clip has (video mode), so
    a driver frame that shows a shot's face is warped from that shot by (almost) nothing."""
    clip = data_dir / "driving" / "man_green_backdrop.mp4"
    frames, lms = video_shots(clip, 4)
    with FaceTracker(video=True) as tracker:
        track = [(f, tracker.detect(f)) for f in read_video_frames(clip)]
    picks = np.linspace(0, len(track) - 1, 4).round().astype(int)
    assert len(frames) == len(lms) == 4
    for frame, lm, i in zip(frames, lms, picks, strict=True):
        assert np.array_equal(frame, track[i][0])
        assert np.array_equal(lm, track[i][1])


def test_a_video_without_a_face_is_refused(tmp_path):
    path = tmp_path / "grey.mp4"
    with VideoWriter(path, 25) as writer:
        for _ in range(5):
            writer.write(np.full((128, 128, 3), 127, np.uint8))
    with pytest.raises(NoFaceError, match="no human face"):
        video_shots(path, 4)


def test_animate_renders_the_lag_free_track_and_does_not_smooth_twice(data_dir):
    from streamer.animate import AnimateOptions
    from streamer.offline import driver_track, offline_track
    from streamer.smoothing import smooth_track

    clip = data_dir / "driving" / "man_green_backdrop.mp4"
    track = driver_track(read_video_frames(clip, 20))
    options = AnimateOptions(fps=25.0)
    targets, render_options = offline_track(track, options)
    assert not render_options.smoothing.enabled and options.smoothing.enabled
    want = smooth_track(track, 25.0, options.offline_smoothing)
    assert all(np.array_equal(a, b) for a, b in zip(targets, want, strict=True))
    assert not np.array_equal(targets[10], track[10])  # it did smooth


def test_refined_targets_bring_the_output_face_closer_to_the_drivers(data_dir):
    """Self-reenactment over 60 frames of a head that turns: with the second look the face
    tracked in the output lies nearer the driver's own landmarks than without it."""
    from streamer import landmarks as L
    from streamer.animate import AnimateOptions
    from streamer.offline import driver_track, offline_animation
    from streamer.portrait import enroll_images
    from streamer.refine import RefineConfig

    clip = data_dir / "driving" / "woman_long_expressive.mp4"
    frames = list(read_video_frames(clip, 60))
    track = driver_track(frames)
    portrait = enroll_images([frames[0]])
    errors = {}
    for refine in (False, True):
        options = AnimateOptions(refine=RefineConfig(refine))
        animator, targets = offline_animation(portrait, track, options)
        assert len(targets) == len(frames)
        with FaceTracker(video=True) as tracker:
            seen = [tracker.detect(animator.render_target(t)) for t in targets]
        animator.close()
        errors[refine] = np.mean([
            np.linalg.norm(s[:, :2] - d[:, :2], axis=1).mean() / L.iod(d)
            for s, d in zip(seen[1:], track[1:], strict=True)])
    assert errors[True] < 0.85 * errors[False], errors


def test_animate_takes_a_new_persons_neutral_where_the_tracker_switched(astronaut_portrait,
                                                                        two_faces):
    """A driving clip whose person leaves while another stays: driver_track says where the
    tracker took up the other face, and from there the targets are measured against that
    face's own rest (at rest: the portrait's rest), not the first person's."""
    from streamer.animate import AnimateOptions
    from streamer.offline import driver_track, offline_animation
    from streamer.refine import RefineConfig
    from streamer.tracker import TrackerConfig

    frames = [two_faces(240, 220)] * 4 + [two_faces(0, 220)] * 6
    switches: list[int] = []
    track = driver_track(frames, TrackerConfig(switch_after=2), switches)
    assert switches == [6] and track[4] is None and track[5] is None
    options = AnimateOptions(refine=RefineConfig(enabled=False))
    moved = {}
    for given in ((), switches):
        animator, targets = offline_animation(astronaut_portrait, track, options, switches=given)
        animator.close()
        moved[bool(given)] = float(np.abs(targets[-1] - targets[3])[:, :2].max())
    assert moved[True] < 2.0 and moved[False] > 50.0, moved  # pixels of the 256 crop


def test_shots_from_a_clip_of_two_people_follow_the_face_asked_for(data_dir, tmp_path):
    """`enroll --from-video --face N`: a clip of two people side by side (man_glasses_office
    left, woman_long_expressive right): the shots follow the face asked for, in every shot;
    a third face is not there."""
    left = read_video_frames(data_dir / "driving" / "man_glasses_office.mp4", 20)
    right = read_video_frames(data_dir / "driving" / "woman_long_expressive.mp4", 20)
    clip = tmp_path / "two.mp4"
    with VideoWriter(clip, 25.0) as writer:
        for a, b in zip(left, right, strict=True):
            writer.write(np.hstack([cv2.resize(a, (320, 320)), cv2.resize(b, (320, 320))]))
    for face, side in ((1, "left"), (2, "right")):
        shots, landmarks = video_shots(clip, 4, face)
        assert len(shots) == 4
        xs = [float(lm[:468, 0].mean()) for lm in landmarks]
        assert all((x < 320) == (side == "left") for x in xs), (face, xs)
    with pytest.raises(NoFaceError, match="no face 3 from the left"):
        video_shots(clip, 4, 3)
    from streamer.cli import main
    from streamer.portrait import load_portrait

    out = tmp_path / "her.headcast"
    assert main(["enroll", "--from-video", str(clip), "--face", "2", "--shots", "2",
                 "--crop-size", "256", "-o", str(out)]) == 0
    assert load_portrait(out).landmarks[:468, 0].mean() > 320


def test_a_clip_whose_face_is_small_against_the_frame_is_tracked_around_it(tmp_path,
                                                                           astronaut_bgr):
    # video mode's face detector lost the astronaut's face, 95 px wide, in a 1080p frame:
    # "no human face found in any of its frames"
    from streamer.offline import clip_track

    alone = cv2.resize(astronaut_bgr, (400, 400))
    with FaceTracker(video=False) as tracker:
        near = tracker.detect(cv2.resize(astronaut_bgr, (800, 800)))
    clip = tmp_path / "far.mp4"
    with VideoWriter(clip, 25) as writer:
        for _ in range(10):
            frame = np.full((1080, 1920, 3), 110, np.uint8)
            frame[500:900, 1300:1700] = alone
            writer.write(frame)
    with FaceTracker(video=True) as tracker:
        assert tracker.detect(next(iter(read_video_frames(clip)))) is None  # as before
    times: list[float | None] = []
    track = clip_track(clip, times=times)
    assert len(track) == len(times) == 10 and all(lm is not None for lm in track)
    expected = near[:, :2] / 2.0 + (1300, 500)  # where the face is in the frame
    for landmarks in track:
        assert np.abs(landmarks[:, :2] - expected).mean() < 2.0  # pixels, IOD ~48


def test_a_clip_of_a_small_face_beside_a_dog_is_tracked_around_the_face(tmp_path,
                                                                        dog_beside_a_person):
    """Video mode passes the dog's "face" over and (with the live look closer off, as
    clip_track runs it) finds no other; the square to track within is then looked for
    around a face that is seen again, hers, not around the largest, the dog's."""
    from streamer.offline import clip_track

    clip = tmp_path / "dog_and_her.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 30, (1280, 720))
    for _ in range(10):
        writer.write(dog_beside_a_person)
    writer.release()
    with FaceTracker(video=False) as tracker:  # the largest face of each frame: the dog's
        largest = [tracker.detect(frame) for frame in read_video_frames(clip)]
    assert sum(face is not None and face[:468, 0].mean() < 640 for face in largest) >= 5
    track = clip_track(clip)
    assert len(track) == 10 and all(lm is not None and lm[:468, 0].mean() > 990 for lm in track)
