import cv2
import numpy as np
import pytest

from streamer import landmarks as L
from streamer.tracker import LOST_AROUND, NUM_LANDMARKS, FaceTracker, TrackerConfig


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker(video=False) as t:
        yield t


def test_finds_478_landmarks_on_a_real_face(tracker, astronaut_bgr):
    lm = tracker.detect(astronaut_bgr)
    assert lm is not None and lm.shape == (NUM_LANDMARKS, 3) and lm.dtype == np.float32
    h, w = astronaut_bgr.shape[:2]
    assert (lm[:, 0] > 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] < h).all()
    assert 40 < L.iod(lm) < 200
    assert lm[468, 0] < lm[473, 0]  # iris 468 belongs to the eye on the image's left


def test_no_face_gives_none(tracker, data_dir):
    for name in ("no_face_dog.jpg", "no_face_cartoon_alpaca.jpg"):
        image = cv2.imread(str(data_dir / "portraits" / name))
        assert tracker.detect(image) is None
    assert tracker.detect(np.zeros((64, 64, 3), np.uint8)) is None


def test_largest_of_two_faces(tracker, astronaut_bgr):
    face = astronaut_bgr[20:300, 110:390]  # (280, 280) around the face
    canvas = np.full((300, 520, 3), 127, np.uint8)
    canvas[10:290, :280] = face
    canvas[60:260, 300:500] = cv2.resize(face, (200, 200))
    faces = tracker.detect_all(canvas)
    assert len(faces) == 2
    lm = tracker.detect(canvas)
    assert lm[:468, 0].mean() < 280  # the big face, on the left


@pytest.mark.parametrize(("size", "at"), [((900, 512), (0, 0)), ((512, 1600), (0, 1088)),
                                          ((1400, 1400), (700, 350))])
def test_a_face_small_against_a_large_picture_is_found_where_it_is(tracker, astronaut_bgr, size,
                                                                   at):
    # the face detector sees the picture at 128 x 128: the astronaut at the top of a 512 x
    # 900 picture (a half-length phone photo) had been "no human face"
    alone = tracker.detect(astronaut_bgr)
    picture = np.full((*size, 3), 90, np.uint8)
    y, x = at
    picture[y:y + 512, x:x + 512] = astronaut_bgr
    found = tracker.detect_all(picture)
    assert len(found) == 1  # once, though several squares hold it
    # where it is, within what a read from another detector box moves the mesh (1.5 px)
    assert np.abs(found[0][:, :2] - (alone[:, :2] + (x, y))).mean() < 0.04 * L.iod(alone)
    with FaceTracker(video=True) as video:  # video mode reads the whole frame only
        assert video.detect(picture) is None


def far_frame(astronaut_bgr, i: int, face: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """Frame i of a person far from a 720p webcam: the astronaut at 300 px (a face 54 px
    wide) moving 5 px a frame across a 1280 × 720 frame, and bobbing; → (frame, where)."""
    frame = np.full((720, 1280, 3), 100, np.uint8)
    x, y = 100 + 5 * i, 300 + int(60 * np.sin(i / 15))
    if face:
        frame[y:y + 300, x:x + 300] = cv2.resize(astronaut_bgr, (300, 300))
    return frame, (x, y)


def test_video_mode_looks_closer_for_a_small_face_and_follows_it(tracker, astronaut_bgr):
    """The whole frame's face detector misses the far face; after look_closer_after frames
    without a face the frame's squares are read, and the face is tracked from there on
    within a square that follows it, where it is. Let go once it has been gone a few
    frames: a face near the camera is then found at once."""
    near = tracker.detect(cv2.resize(astronaut_bgr, (900, 900)))
    expected = near[:, :2] / 3.0  # the face at 300 px, at (0, 0)
    found = []
    with FaceTracker(TrackerConfig(look_closer_after=10), video=True) as video:
        for i in range(40):
            frame, (x, y) = far_frame(astronaut_bgr, i)
            lm = video.detect(frame)
            found.append(lm is not None)
            if lm is not None:
                assert np.abs(lm[:, :2] - (expected + (x, y))).mean() < 0.03 * L.iod(expected)
        assert found == [False] * 9 + [True] * 31
        for i in range(40, 41 + LOST_AROUND):  # gone: the square is let go
            assert video.detect(far_frame(astronaut_bgr, i, face=False)[0]) is None
        close = np.full((720, 1280, 3), 100, np.uint8)  # her head, 640 px high
        close[40:680, 600:1240] = cv2.resize(astronaut_bgr[:320, 80:400], (640, 640))
        assert video.detect(close) is not None
    with FaceTracker(TrackerConfig(look_closer_after=None), video=True) as video:
        assert all(video.detect(far_frame(astronaut_bgr, i)[0]) is None for i in range(20))


@pytest.mark.parametrize(("name", "size"), [
    ("no_face_dog.jpg", (320, 240)), ("no_face_dog.jpg", (640, 480)),
    ("no_face_cartoon_alpaca.jpg", (480, 640)), ("no_face_cartoon_alpaca.jpg", (1080, 1920))])
def test_squares_of_a_dog_or_a_cartoon_show_no_face(tracker, data_dir, name, size):
    # read at the whole picture's detector threshold (0.5), squares of these squeezed
    # pictures showed a face; at SQUARE_CONFIDENCE none
    image = cv2.resize(cv2.imread(str(data_dir / "portraits" / name)), size)
    assert tracker.detect_all(image) == []


def test_rejects_non_bgr_input(tracker):
    with pytest.raises(ValueError):
        tracker.detect(np.zeros((32, 32), np.uint8))


def test_closed_tracker_refuses_work(astronaut_bgr):
    t = FaceTracker(video=True)
    t.close()
    t.close()  # twice is fine
    with pytest.raises(RuntimeError):
        t.detect(astronaut_bgr)


def _first_read_drift(image: np.ndarray, lock_on: int, gap: bool = False) -> float:
    """Mean distance (% of the eye distance) of a video tracker's first read of a still frame
    from its settled read (the mean of its fifth to tenth); gap: a frame without a face
    comes first, so the face is found, lost and found again."""
    with FaceTracker(TrackerConfig(lock_on=lock_on), video=True) as video:
        if gap:
            video.detect(image)
            assert video.detect(np.zeros_like(image)) is None
        reads = [video.detect(image) for _ in range(10)]
    settled = np.mean(reads[4:], axis=0)
    return float(np.linalg.norm(reads[0][:, :2] - settled[:, :2], axis=1).mean()
                 / L.iod(settled) * 100)


@pytest.mark.parametrize("gap", [False, True], ids=["first frame", "found again"])
def test_a_face_just_found_is_read_as_the_tracker_settles(astronaut_bgr, gap):
    """The first read of a face comes from the detector's box, the rest from the mesh's own:
    without reading it again the first read of a still frame stands off the settled one."""
    image = cv2.resize(astronaut_bgr, (256, 256), interpolation=cv2.INTER_AREA)
    assert _first_read_drift(image, lock_on=0, gap=gap) > 1.0
    assert _first_read_drift(image, TrackerConfig().lock_on, gap=gap) < 0.5


def _side(face: np.ndarray | None) -> str | None:
    return None if face is None else ("left" if face[:468, 0].mean() < 320 else "right")


def test_video_mode_follows_the_face_it_found_first(two_faces):
    """A second face that grows past the first (someone stepping closer behind the user)
    does not take the avatar over: video mode follows the face it found first."""
    sizes = [(220, 150 + 10 * i) for i in range(14)]  # the right face grows 150 → 280 px
    with FaceTracker(video=True) as video:
        sides = [_side(video.detect(two_faces(*s))) for s in sizes]
        last = video.detect_all(two_faces(*sizes[-1]))
    assert len(last) == 2 and _side(max(last, key=lambda f: np.ptp(f[:, 0]))) == "right"
    assert sides == ["left"] * len(sizes)


def test_a_face_gone_while_another_stays_is_waited_for_then_replaced(two_faces):
    """The followed face leaves while another stays: no face for switch_after frames (the
    avatar eases to neutral), then the other. Back within them, it is followed again."""
    config = TrackerConfig(switch_after=3)
    with FaceTracker(config, video=True) as video:
        assert _side(video.detect(two_faces(240, 220))) == "left"
        assert [_side(video.detect(two_faces(0, 220))) for _ in range(2)] == [None, None]
        assert _side(video.detect(two_faces(240, 220))) == "left"  # back in time
        gone = [_side(video.detect(two_faces(0, 220))) for _ in range(5)]
    assert gone == [None, None, None, "right", "right"]


def test_with_no_face_in_view_the_next_face_found_is_taken(two_faces):
    with FaceTracker(TrackerConfig(switch_after=30), video=True) as video:
        assert _side(video.detect(two_faces(240, 0))) == "left"
        assert video.detect(two_faces(0, 0)) is None
        assert _side(video.detect(two_faces(0, 240))) == "right"


def test_a_phantom_face_in_a_real_background_does_not_take_her_place(data_dir):
    """few_shot_woman_indoor: from frame 221 MediaPipe also finds a face in the blurred room
    behind her, its box 0.88-0.94 of hers. The face followed stays hers in every frame."""
    from streamer.video_io import read_video_frames

    frames = list(read_video_frames(data_dir / "driving" / "few_shot_woman_indoor.mp4"))[200:]
    both = 0
    with FaceTracker(video=True) as video:
        for frame in frames:
            face = video.detect(frame)
            assert face is not None and 620 < face[:468, 0].mean() < 820  # hers, mid-frame
            both += len(video.detect_all(frame)) == 2
    assert both >= 40


def test_a_face_on_no_person_is_not_taken_up_though_larger(data_dir):
    """few_shot_woman_indoor, frame 224, with her side of the frame drawn 0.75 as large: the
    "face" MediaPipe finds in the room behind her is now the larger. Video mode takes up the
    largest face on a person: hers."""
    from streamer.tracker import box_area
    from streamer.video_io import read_video_frames

    frame = list(read_video_frames(data_dir / "driving" / "few_shot_woman_indoor.mp4", 225))[224]
    left = frame[:, :880]
    small = cv2.resize(left, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    frame[:, :880] = cv2.blur(left, (31, 31))
    frame[720 - small.shape[0]:, 880 - small.shape[1]:880] = small
    with FaceTracker(video=True) as video:
        face = video.detect(frame)
        faces = video.detect_all(frame)
    assert len(faces) == 2 and max(faces, key=box_area)[:468, 0].mean() > 880  # the phantom
    assert face is not None and face[:468, 0].mean() < 880  # hers


def _dog_in_view(data_dir) -> np.ndarray:
    """(480, 640, 3) BGR: the shared dog photo, 200 px wide, where the mesh sees a "face"."""
    from benchmarks.face_check import place

    dog = cv2.imread(str(data_dir / "portraits" / "no_face_dog.jpg"))
    return place(dog, (480, 640), 200, 120, 140, 128)


def test_a_dog_in_view_is_not_taken_up(data_dir):
    """Video mode follows the "face" the mesh finds on the dog unless it is checked
    (streamer.face_check): 30 of 30 frames without the check, none with it."""
    frames = [np.roll(_dog_in_view(data_dir), 2 * i, axis=1) for i in range(30)]
    with FaceTracker(TrackerConfig(check_after=None), video=True) as video:
        assert sum(video.detect(frame) is not None for frame in frames) >= 20
    with FaceTracker(video=True) as video:
        assert all(video.detect(frame) is None for frame in frames)


def test_a_person_away_from_the_dog_is_taken_up_at_once_and_in_its_place_soon(
        data_dir, astronaut_bgr):
    """A face away from the doubted dog's place is looked at at once; one where the dog was,
    after the check_after frames left."""
    face = cv2.resize(astronaut_bgr[20:300, 110:390], (240, 240))  # at 200 px, not found
    dog = _dog_in_view(data_dir)
    elsewhere = np.full_like(dog, 128)
    elsewhere[120:360, 390:630] = face
    instead = dog.copy()
    instead[120:360, 100:340] = face
    with FaceTracker(TrackerConfig(check_after=6), video=True) as video:
        assert [video.detect(dog) for _ in range(3)] == [None] * 3
        found = video.detect(elsewhere)
        assert found is not None and found[:468, 0].mean() > 390
    with FaceTracker(TrackerConfig(check_after=6), video=True) as video:
        assert [video.detect(dog) for _ in range(3)] == [None] * 3
        seen = [video.detect(instead) is not None for _ in range(8)]
    assert seen == [False] * 3 + [True] * 5  # looked at again 6 frames after the first look


def test_a_person_beside_a_dog_is_taken_up_at_once(tracker, dog_beside_a_person):
    """The whole frame's pass finds the dog's "face" and misses hers (under a fifth of the
    frame); with the dog passed over, the squares are read past it: she is followed from the
    first frame, the dog never. Without reading squares (look_closer_after None), nobody."""
    image = dog_beside_a_person
    faces = tracker.detect_all(image)
    assert len(faces) == 1 and faces[0][:468, 0].mean() < 640, "the mesh sees no dog here"
    with FaceTracker(video=True) as video:
        seen = [video.detect(image) for _ in range(10)]
    assert all(face is not None and face[:468, 0].mean() > 990 for face in seen)
    with FaceTracker(TrackerConfig(look_closer_after=None), video=True) as video:
        assert all(video.detect(image) is None for _ in range(10))


def test_a_face_found_in_squares_is_read_in_its_own_square(tracker, dog_beside_a_person):
    """The astronaut's face, some 100 px wide in a 720p picture, is found in a square of
    the picture's height, where the detector's box is coarse: that read lay 0.11 IOD from
    where she is, one eye read half shut (the avatar winked). Read again in the square of
    three face widths around it: within 0.02 IOD, her eyes read alike."""
    her = dog_beside_a_person[317:615, 991:1270]
    alone = tracker.detect(her)
    alone[:, :2] += (991, 317)
    faces = [face for face in tracker.detect_in_squares(dog_beside_a_person)
             if face[:468, 0].mean() > 640]
    assert len(faces) == 1
    assert np.abs(faces[0][:, :2] - alone[:, :2]).mean() < 0.02 * L.iod(alone)
    right, left = (np.linalg.norm(faces[0][a, :2] - faces[0][b, :2])
                   / np.linalg.norm(faces[0][c, :2] - faces[0][d, :2])
                   for a, b, c, d in ((159, 145, 33, 133), (386, 374, 263, 362)))
    assert abs(right - left) < 0.05


def test_a_face_under_a_quarter_of_the_picture_is_read_again_around_it(tracker, astronaut_bgr,
                                                                        monkeypatch):
    """Her head and shoulders, 746 px in a 1080p picture: the whole picture's pass finds her
    face (a sixth of the height) and its read lies a fifth of an IOD from where she is; read
    again in the square around it, within 0.02 IOD."""
    import streamer.tracker as tracking

    her = cv2.resize(astronaut_bgr[0:300, 120:400], (512, 512))
    expected = tracker.detect(her)[:, :2] * 746 / 512 + (427, 141)
    picture = np.full((1080, 1920, 3), 141, np.uint8)
    picture[141:887, 427:1173] = cv2.resize(her, (746, 746))
    unit = L.iod(expected)
    monkeypatch.setattr(tracking, "SMALL_FACE", 0.0)  # as first read
    assert np.abs(tracker.detect(picture)[:, :2] - expected).mean() > 0.1 * unit
    monkeypatch.undo()
    assert np.abs(tracker.detect(picture)[:, :2] - expected).mean() < 0.02 * unit


def test_points_are_read_from_the_wire_as_from_their_fields(astronaut_bgr):
    from mediapipe.framework.formats import landmark_pb2
    from mediapipe.python.solutions import face_mesh

    from streamer.tracker import _points

    with face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        face = mesh.process(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB)).multi_face_landmarks[0]
    fields = np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32)
    assert np.array_equal(_points(face), fields)  # the wire's layout, read to the bit
    # any other layout is read through the fields: a visibility set, a coordinate left out
    odd = landmark_pb2.NormalizedLandmarkList()
    odd.CopyFrom(face)
    odd.landmark[5].visibility = 0.5
    odd.landmark[9].ClearField("z")
    expected = fields.copy()
    expected[9, 2] = 0.0
    assert np.array_equal(_points(odd), expected)


def _track(frames: list[np.ndarray], **config) -> tuple[list[np.ndarray | None], list[bool]]:
    """A video tracker's reads of frames, and whether it read each with the one-face mesh."""
    with FaceTracker(TrackerConfig(**config), video=True) as video:
        reads = [(video.detect(frame), video.reads_one_face) for frame in frames]
    return [face for face, _ in reads], [one for _, one in reads]


def test_a_face_alone_in_view_is_read_by_the_one_face_mesh_to_the_bit(data_dir):
    """With one face in view, the mesh that looks for one face (no face detector on every
    frame) reads it as the mesh that looks for several does, to the bit, from the first frame
    on."""
    from streamer.video_io import read_video_frames

    frames = list(read_video_frames(data_dir / "driving" / "man_glasses_office.mp4", 40))
    one, used = _track(frames)
    several, never = _track(frames, single_face=False)
    assert all(used) and not any(never)
    assert all(a is not None and np.array_equal(a, b) for a, b in zip(one, several, strict=True))


def test_a_face_the_one_face_mesh_loses_is_followed_as_before(two_faces):
    """The followed face alone, then a second face beside it, then the followed one gone: the
    one-face mesh reads it while it is there (the second face cannot take it over, as
    before); gone, every face is looked for again, the avatar rests for switch_after frames
    and the other face is taken up, as without the one-face mesh; alone, it is read by the
    one-face mesh single_after frames after the loss."""
    frames = ([two_faces(240, 0)] * 3 + [two_faces(240, 220)] * 3 + [two_faces(0, 220)] * 6
              + [two_faces(0, 240)] * 4)
    config = {"switch_after": 3, "single_after": 4}
    one, used = _track(frames, **config)
    several, _ = _track(frames, single_face=False, **config)
    sides = [_side(face) for face in one]
    assert sides == [_side(face) for face in several]
    assert sides == ["left"] * 6 + [None] * 3 + ["right"] * 7
    assert used == [True] * 6 + [False] * 4 + [True] * 6  # single_after counted from the loss


def test_a_tracker_reading_one_face_refuses_bad_frames_and_work_once_closed(astronaut_bgr):
    with FaceTracker(video=True) as video:
        assert video.detect(astronaut_bgr) is not None and video.reads_one_face
        with pytest.raises(ValueError):
            video.detect(np.zeros((32, 32), np.uint8))
        assert video.detect(astronaut_bgr) is not None  # nothing lost
        video.close()
        with pytest.raises(RuntimeError):
            video.detect(astronaut_bgr)


def test_a_one_face_mesh_that_misses_the_face_is_not_started_on_every_frame(astronaut_bgr):
    """Where the one-face mesh, starting from its face detector, does not find the face the
    whole mesh tracks, the whole mesh goes on reading it, and the one-face mesh is tried
    again only single_after frames later (each start reads the frame five times)."""

    class Blind:  # a one-face mesh whose detector finds nothing
        reads = 0

        def reset(self) -> None:
            pass

        def process(self, rgb: np.ndarray) -> object:
            Blind.reads += 1
            return type("Result", (), {"multi_face_landmarks": None})()

        def close(self) -> None:
            pass

    with FaceTracker(TrackerConfig(single_after=6), video=True) as video:
        video._single = Blind()
        faces = [video.detect(astronaut_bgr) for _ in range(8)]
    assert all(face is not None for face in faces)
    assert Blind.reads == 2 * (1 + TrackerConfig().lock_on)  # at frames 0 and 6, not 8 times
