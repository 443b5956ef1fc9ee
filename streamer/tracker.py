"""MediaPipe face mesh: 478 landmarks (468 mesh + 10 iris) per face, in pixels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.quiet import stderr_silenced
from streamer.segment import PersonCheck

NUM_LANDMARKS = 478
SQUARE_CONFIDENCE = 0.8  # face detector threshold in squares of a picture (_square_mesh)
LOST_AROUND = 3  # video: frames a small face may be missing from its square before it is let go
# image mode: a face found in the whole picture narrower than this part of its shorter side
# is read again around it (FaceTracker._second_read). The astronaut's head and shoulders at
# 39 places in large pictures: as first read, her faces under a quarter of the shorter side
# lay up to 0.20 IOD from where she is (0.015 at the median), those over it 0.015 at most;
# read again, 0.0093 at most.
SMALL_FACE = 0.25
# IOD: the second read is kept where it lies further than this from the first (mean over the
# landmarks). Two reads of one face from different boxes lie about 0.014 apart (the
# astronaut's photo: 0.012, so her read, the default portrait's, stays as it was); the first
# reads off by 0.04–0.20 were replaced. Of the 19 faces under a quarter: 0.0154 IOD p50 and
# 0.197 max from where she is as first read, 0.0114 and 0.025 as kept.
SECOND_READ_DRIFT = 0.03


@dataclass(frozen=True)
class TrackerConfig:
    max_faces: int = 4  # faces looked for; the largest one is returned (video: followed)
    min_detection_confidence: float = 0.5  # face detector threshold
    min_tracking_confidence: float = 0.5  # below this, video mode re-runs the detector
    # Video mode: a face just found (the first frame, or the first after frames without one)
    # is read this many more times from the same frame, and the last read kept. Its first
    # read is made from the face detector's box, the reads after it from the mesh's own, and
    # the two disagree: on one still frame read ten times, the first read's head rotation
    # stood 0.5–0.7° from the tenth on two shared clips and 1.8–2.8° on three renders of
    # shared portraits, the reads from the fourth on 0.0–0.7° (mostly under 0.3°). Every head
    # rotation a clip is measured by is taken against its first frame (benchmarks), and the
    # second look's rest offset is the first read of a still render (streamer/refine.py).
    lock_on: int = 4
    # Video mode: the face found first (the largest on a person) is followed: in each
    # frame the face whose box overlaps the last one's most (intersection over union at least
    # follow_iou). Where it is gone while other faces are in view, another is taken up only
    # after switch_after frames (until then: no face, and the avatar eases to neutral); where
    # no face is in view at all, the next one found is taken. Taking the largest face in
    # every frame let a second person behind the user, or two faces of about one size, take
    # the avatar over from one frame to the next.
    follow_iou: float = 0.2
    switch_after: int = 15
    # Video mode: the face to follow first, the N-th from the left of the faces on a person
    # (1 = the leftmost; `enroll --from-video CLIP --face N`); until a frame shows it, no
    # face. None: the largest.
    first_face: int | None = None
    # Video mode: where the whole frame has shown no face for this many frames (and every
    # this many after), its squares are read as image mode reads a picture's: the face
    # detector sees the frame at 128 × 128, and a face under about a fifth of its height is
    # lost (a person 2 m from a 720p webcam). A face found there is tracked within a square
    # around it (square_around) that follows it, until it is lost there. So too, at once
    # and then every this many frames, where faces are in view and none is taken up as one
    # was not seen again (check_after: a dog's "face" beside a person's smaller one). None:
    # the whole frame only.
    look_closer_after: int | None = 30
    # Video mode: a face about to be taken up must be found again in place in its square
    # mirrored and turned (streamer.face_check): the mesh follows "faces" on a dog in view
    # (the shared dog photo set into 45 plain pictures, each shown for 30 frames moving 2 px
    # a frame: followed in 42 of them, 660 of 1350 frames; checked, in none). A face not
    # seen again is looked at again, where it is, after this many frames (a face elsewhere
    # at once). Taking up a person costs the look, once: the first frame of the 25 clips
    # tried took 70–130 ms against 35–60, their tracks the same to the bit. None: every
    # face found is taken up.
    check_after: int | None = 15
    # Video mode: while the face followed is the only one in view, frames are read by a mesh
    # that looks for one face. MediaPipe runs its face detector on every frame while it
    # tracks fewer faces than it looks for: 2.0 of 5.4 ms a frame on this 2-core machine. The
    # face tracked is read the same to the bit (every frame of the eight shared clips, read
    # both ways). A frame where that mesh does not find the followed face is read again as
    # before, with every face looked for; so are the frames after it, until single_after
    # have passed (the whole mesh's restart costs 20–30 ms on the frame the face is lost,
    # the one-face mesh's start 40–50 ms on the frame it reads a face alone again).
    single_face: bool = True
    single_after: int = 30


class FaceTracker:
    """Finds faces in BGR images; detect() returns one.

    video=False: every image is independent (portraits), and detect() gives the largest face.
    video=True: frames of one stream, the mesh is tracked from frame to frame (faster,
    steadier), and detect() gives the face found first for as long as it stays
    (TrackerConfig.follow_iou); use one tracker per stream.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig(), *, video: bool) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging is noisy
        self._mesh = _face_mesh(config, not video, config.min_detection_confidence)
        self._config = config
        self._video = video
        self._lock_on = config.lock_on if video else 0  # image mode: every read is a first
        self._closed = False
        self._started = False  # a face read runs calculators the blank read at start did not
        self._tracking = False  # the last frame had a face
        self._followed: np.ndarray | None = None  # video: box of the face followed
        self._missed = 0  # video: frames since the followed face was last seen
        self.switches = 0  # video: times another face was taken up in place of the followed one
        self._taken = False  # video: a face has been taken up (first_face applies before)
        self._persons = PersonCheck()  # video: which of several faces to take up are people
        self._squares = None  # the mesh that reads squares (_square_mesh)
        self._around: tuple[int, int, int] | None = None  # video: (x, y, side) tracked within
        self._faceless = 0  # video: frames in a row with no face in the whole frame
        self._still: FaceTracker | None = None  # video: image mode, for face_check's views
        # video: frames since the squares were read past faces not taken up (_look_past)
        self._since_look = config.look_closer_after or 0
        # video: the boxes of faces not taken up (not seen again), each with the frames before
        # a face there is looked at again
        self._doubted: list[tuple[np.ndarray, int]] = []
        self._single: Any = None  # video: the mesh that looks for one face (single_face)
        self._single_on = False  # video: the followed face is read by it
        self._single_wait = 0  # video: frames before it may read the followed face again

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """image: (H, W, 3) uint8 BGR → (478, 3) float32 pixels (z scaled like x), or None.
        Image mode: the largest face. Video mode: the face followed (see TrackerConfig)."""
        if self._single_on:
            face = self._read_single(self._checked(image))
            if face is not None:
                return face
        faces = self.detect_all(image)
        if not self._video:
            return max(faces, key=box_area) if faces else None
        face = self._follow(image, faces)
        if face is not None and len(faces) == 1:
            self._start_single(image)
        self._single_wait = max(self._single_wait - 1, 0)
        every = self._config.look_closer_after
        if face is not None or not self._doubted or every is None:
            self._since_look = every or 0  # the next face passed over is looked past at once
            return face
        self._since_look += 1
        if faces and self._since_look >= every:
            self._since_look = 0
            return self._look_past(image)
        return None

    def _follow(self, image: np.ndarray, faces: list[np.ndarray]) -> np.ndarray | None:
        """The face of this frame that continues the followed one. While it is gone and other
        faces are in view: None, for switch_after frames; then the largest of them that is on
        a person (streamer.segment.PersonCheck), if it is a face (TrackerConfig.check_after). A
        frame with no face at all ends the following (the next face found is taken, as at
        first)."""
        if not faces:
            self._followed, self._missed = None, 0
            return None
        if self._followed is not None:
            face = self._continued(faces)
            if face is not None:
                self._followed, self._missed = face_box(face), 0
                return face
            self._missed += 1
            if self._missed <= self._config.switch_after:
                return None
        persons = self._persons.persons(image, faces)
        first = self._config.first_face
        if first is not None and not self._taken:
            if len(persons) < first:
                return None  # the face asked for is not in view yet
            choices = [sorted(persons, key=lambda f: float(f[:468, 0].mean()))[first - 1]]
        else:
            choices = sorted(persons, key=box_area, reverse=True)
        face = next((face for face in choices if self._seen_again(image, face)), None)
        if face is None:
            return None
        if self._followed is not None:
            self.switches += 1
        self._followed, self._missed, self._taken = face_box(face), 0, True
        return face

    @property
    def reads_one_face(self) -> bool:
        """Video mode: whether the followed face is read by the mesh that looks for one face
        (TrackerConfig.single_face)."""
        return self._single_on

    def _start_single(self, image: np.ndarray) -> None:
        """Video mode: the frame's one face is the one followed: from the next frame it is read
        by the mesh that looks for one face (TrackerConfig.single_face), once that mesh has
        read this frame as the whole mesh read it first (1 + lock_on reads: the same
        points)."""
        config = self._config
        if not config.single_face or self._single_wait or self._around is not None:
            return
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        faces: list[np.ndarray] = []
        with stderr_silenced():  # the graph (re)starts on its first read, and says so on fd 2
            if self._single is None:
                self._single = _face_mesh(replace(config, max_faces=1), False,
                                          config.min_detection_confidence)
            else:
                self._single.reset()
            for _ in range(1 + self._lock_on):
                faces = self._read(rgb, self._single) or faces
        self._single_on = self._continued(faces) is not None
        if not self._single_on:  # its detector missed the face the whole mesh tracks: not
            self._single_wait = config.single_after  # tried again on every frame

    def _read_single(self, image: np.ndarray) -> np.ndarray | None:
        """Video mode: the followed face as the mesh that looks for one face reads it; None
        where it is not found: that mesh is left and the whole mesh reads every face again
        from this frame (restarted: its last frame may be long past)."""
        faces = self._read(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), self._single)
        face = self._continued(faces)
        if face is None:
            self._single_on, self._single_wait = False, self._config.single_after
            with stderr_silenced():  # it starts again, its models logging from threads of
                self._mesh.reset()  # their own: run once before its window closes
                self._mesh.process(np.zeros((64, 64, 3), np.uint8))
            self._started = False  # and its first read of a face logs again
            return None
        # the rest of the following's state is as the frame that started this mesh left it:
        # the face has continued on every frame since
        self._followed = face_box(face)
        return face

    def _continued(self, faces: list[np.ndarray]) -> np.ndarray | None:
        """The face that overlaps the followed one's box most, if by follow_iou."""
        if self._followed is None or not faces:
            return None
        overlaps = [box_iou(face_box(face), self._followed) for face in faces]
        if max(overlaps) < self._config.follow_iou:
            return None
        return faces[int(np.argmax(overlaps))]

    def _look_past(self, image: np.ndarray) -> np.ndarray | None:
        """Video mode, faces in view and none taken up as one was not seen again (an animal's
        "face"): the frame's squares are read, as where no face is in view, for a face away
        from those passed over; at once, then every look_closer_after frames while none is
        taken up. The whole frame's pass misses a person's face under a fifth of the frame
        beside a dog's (of 35 pictures of the shared dog beside the astronaut, the mesh found
        her in 17, see benchmarks.face_check). One found is tracked within its square, and
        taken up if it is a face."""
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        found = faces_apart(self._read_squares(rgb), [box for box, _ in self._doubted],
                            self._config.follow_iou)
        if not found:
            return None
        return self._follow(image, self._settle(rgb, self._track_around(rgb, found)))

    def _seen_again(self, image: np.ndarray, face: np.ndarray) -> bool:
        """Video mode: whether a face about to be taken up is a face (streamer.face_check).
        Where one was not, a face there is looked at again only after
        TrackerConfig.check_after frames; a face elsewhere at once."""
        every = self._config.check_after
        if every is None:
            return True
        box = face_box(face)
        for i, (doubted, left) in enumerate(self._doubted):
            if box_iou(box, doubted) >= self._config.follow_iou:
                del self._doubted[i]
                if left > 0:
                    self._doubted.append((box, left - 1))
                    return False
                break
        from streamer.face_check import seen_again  # it reads views with a tracker of ours

        if self._still is None:
            self._still = FaceTracker(self._config, video=False)
        if seen_again(self._still, image, face):
            return True
        self._doubted = [*self._doubted[-7:], (box, every - 1)]  # a few places at most
        return False

    def _checked(self, image: np.ndarray) -> np.ndarray:
        """image, if this tracker is open and it is an (H, W, 3) uint8 BGR image."""
        if self._closed:
            raise RuntimeError("FaceTracker is closed")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}"
            )
        return image

    def detect_all(self, image: np.ndarray) -> list[np.ndarray]:
        """Every face found: a list of (478, 3) float32 arrays in pixels."""
        self._checked(image)
        # cvtColor, not numpy's reversed view copied: the same bytes, 100× sooner (a 720p
        # frame 0.07 ms against 6.9 ms on this 2-core machine; tracked alternately in one
        # process, the track stage took 12.8 ms p50 with it, 24.3 ms with the copy)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        faces = self._read_frame(rgb)
        if self._video:
            faces = self._look_closer(rgb, faces)
        elif not faces:  # a face small against a large picture
            faces = self._read_squares(rgb)
        else:
            faces = [self._second_read(rgb, face) for face in faces]
        if faces and not self._tracking:
            faces = self._settle(rgb, faces)
        self._tracking = bool(faces)
        return faces

    def _settle(self, rgb: np.ndarray, faces: list[np.ndarray]) -> list[np.ndarray]:
        """Faces just found, read again lock_on times (video mode) until the mesh settles."""
        for _ in range(self._lock_on):
            faces = self._read_frame(rgb) or faces
        return faces

    def detect_in_squares(self, image: np.ndarray) -> list[np.ndarray]:
        """Image mode: the faces found in squares of a BGR picture (_read_squares), where the
        whole picture's pass misses a small one; as detect_all does where that pass finds
        none."""
        return self._read_squares(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    def _read_frame(self, rgb: np.ndarray) -> list[np.ndarray]:
        """The frame's faces: read in the whole frame, or (video mode, a small face) in the
        square it is tracked within, put back in place."""
        if self._around is None:
            return self._read(rgb)
        x, y, side = self._around
        faces = self._read(np.ascontiguousarray(rgb[y:y + side, x:x + side]))
        for face in faces:
            face[:, :2] += (x, y)
        return faces

    def _look_closer(self, rgb: np.ndarray, faces: list[np.ndarray]) -> list[np.ndarray]:
        """Video mode: the faces of this frame, where the face detector misses a small one
        (TrackerConfig.look_closer_after). A face tracked within its square moves the square
        with it; lost there, the whole frame is read again."""
        if faces:
            self._faceless = 0
            if self._around is not None:
                face = self._continued(faces)
                face = max(faces, key=box_area) if face is None else face
                self._around = _follow_square(self._around, face, rgb.shape[:2])
            return faces
        self._faceless += 1
        if self._around is not None:
            # the mesh looks for a face it lost on the next frame: lost for good after a few
            if self._faceless <= LOST_AROUND:
                return []
            self._around, self._faceless = None, 0
            return self._read(rgb)
        every = self._config.look_closer_after
        if every is None or self._faceless % every:
            return []
        found = self._read_squares(rgb)
        return self._track_around(rgb, found) if found else []

    def _track_around(self, rgb: np.ndarray, found: list[np.ndarray]) -> list[np.ndarray]:
        """Video mode: from this frame on, track within the square around the largest of
        `found` (faces read in the frame's squares); this frame's faces read there (else
        `found`)."""
        self._around = square_around([face_box(max(found, key=box_area))], rgb.shape[:2])
        return self._read_frame(rgb) or found

    def _read_squares(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Faces the whole picture's pass missed: the face detector sees the picture at
        128 × 128, where a face under about a fifth of the longer side is lost (the
        astronaut's, 150 px wide at the top of a 512 × 900 picture: a half-length phone
        photo). Squares of the shorter side, then of half of it, each half a square apart;
        a face found in several squares is taken from the one it sits deepest in."""
        h, w = rgb.shape[:2]
        side = min(h, w)
        for _ in range(2):
            if side < 64:
                break
            found = []
            corners = [(x, y) for y in _starts(h, side) for x in _starts(w, side)]
            for x, y in corners if len(corners) > 1 else []:  # one: the whole picture again
                square = np.ascontiguousarray(rgb[y:y + side, x:x + side])
                for face in self._read(square, self._square_mesh()):
                    face[:, :2] += (x, y)
                    found.append((_depth(face_box(face), (x, y, x + side, y + side)), face))
            if found:
                faces = _distinct([face for _, face in sorted(found, key=lambda f: -f[0])])
                return [self._read_around(rgb, face) for face in faces]
            side //= 2
        return []

    def _second_read(self, rgb: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Image mode: a face the whole picture's pass found, read again around it where it is
        small against the picture (SMALL_FACE), and that read kept where the two disagree by
        more than reads of one face do (SECOND_READ_DRIFT)."""
        if np.ptp(face[:, 0]) >= min(rgb.shape[:2]) * SMALL_FACE:
            return face
        again = self._read_around(rgb, face)
        drift = np.linalg.norm(again[:, :2] - face[:, :2], axis=1).mean()
        return again if drift > SECOND_READ_DRIFT * L.iod(face) else face

    def _read_around(self, rgb: np.ndarray, face: np.ndarray) -> np.ndarray:
        """A face found in a square read again in the square of three face widths around it
        (square_around), where the face detector's box, and so the mesh, is surer: the
        astronaut's head and shoulders found in squares at 27 places in large pictures, read
        so, lay 0.0067 IOD from where she is at the median and 0.014 at most, against 0.0114
        and 0.18 as first read (a read 0.11 IOD off showed one eye half shut, and the avatar
        winked on every blink)."""
        x, y, side = square_around([face_box(face)], rgb.shape[:2])
        for again in self._read(np.ascontiguousarray(rgb[y:y + side, x:x + side]),
                                self._square_mesh()):
            again[:, :2] += (x, y)
            if box_iou(face_box(again), face_box(face)) >= 0.3:
                return again
        return face

    def _square_mesh(self) -> Any:  # mediapipe's FaceMesh
        """The face mesh that reads squares, surer of a face than the whole picture's: at the
        whole picture's 0.5, squares found faces on 9 of 30 pictures of a dog and a cartoon
        alpaca (squeezed, or in a larger picture); at 0.8 on none, while a face 95 px wide in
        a 1080p frame, and the astronaut in a 512 x 900 picture, were still found (0.9 lost
        the first)."""
        if self._squares is None:
            surer = max(self._config.min_detection_confidence, SQUARE_CONFIDENCE)
            self._squares = _face_mesh(self._config, True, surer)
        return self._squares

    def _read(self, rgb: np.ndarray, mesh: Any = None) -> list[np.ndarray]:
        """One pass of the face mesh (or of `mesh`) over an RGB frame → faces in pixels."""
        if mesh is not None:
            result = mesh.process(rgb)
        elif self._started:
            result = self._mesh.process(rgb)
        else:  # its first read (and the first after a reset()) logs to fd 2 from C++
            with stderr_silenced():
                result = self._mesh.process(rgb)
            self._started = True
        if not result.multi_face_landmarks:
            return []
        h, w = rgb.shape[:2]
        scale = np.array([w, h, w], np.float32)
        return [_points(face) * scale for face in result.multi_face_landmarks]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._mesh.close()
            self._persons.close()
            if self._squares is not None:
                self._squares.close()
            if self._single is not None:
                self._single.close()
            if self._still is not None:
                self._still.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A NormalizedLandmark with x, y and z set, as protobuf writes it: its field's tag (1, length-
# delimited) and length, then each float's tag (fields 1–3, 32-bit) before its 4 bytes.
_POINT_BYTES = 17
_POINT_TAGS = {0: 0x0A, 1: 15, 2: 0x0D, 7: 0x15, 12: 0x1D}
_POINT_FLOATS = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]


def _points(face: Any) -> np.ndarray:
    """A NormalizedLandmarkList → (n, 3) float32 x, y, z. Read from its wire bytes when every
    point is written as _POINT_TAGS says (MediaPipe's face mesh sets x, y and z and nothing
    else): 50 µs for 478 points, against 270 µs through the points' attributes, which is
    what any other layout takes."""
    wire = np.frombuffer(face.SerializeToString(), np.uint8)
    if len(wire) % _POINT_BYTES == 0 and len(wire):
        rows = wire.reshape(-1, _POINT_BYTES)
        if all((rows[:, i] == tag).all() for i, tag in _POINT_TAGS.items()):
            return rows[:, _POINT_FLOATS].copy().view("<f4")
    return np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32).reshape(-1, 3)


def _face_mesh(config: TrackerConfig, static: bool, detection: float) -> Any:
    """MediaPipe's FaceMesh (478 points with iris) for config.max_faces faces, started and
    run once on a blank picture with its C++ chatter silenced: it opens its models on
    threads of its own, which printed their start-up lines (TF Lite's XNNPACK delegate,
    absl's warnings) after construction had returned and before the first read, in 8 of 12
    `enroll`s of the astronaut with stderr a pipe."""
    from mediapipe.python.solutions import face_mesh  # deferred: heavy import

    with stderr_silenced():
        mesh = face_mesh.FaceMesh(static_image_mode=static, max_num_faces=config.max_faces,
                                  refine_landmarks=True, min_detection_confidence=detection,
                                  min_tracking_confidence=config.min_tracking_confidence)
        mesh.process(np.zeros((64, 64, 3), np.uint8))  # it has opened when this returns
    return mesh


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) around the landmarks, pixels."""
    return np.concatenate([landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)])


def box_area(landmarks: np.ndarray) -> float:
    """Area of the box around a face's landmarks, pixels² (what "largest face" compares)."""
    x0, y0, x1, y1 = face_box(landmarks)
    return float((x1 - x0) * (y1 - y0))


def square_around(boxes: Sequence[np.ndarray], shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(x, y, side) of a square of a frame of `shape` (h, w, ...) around faces' (x0, y0, x1,
    y1) boxes: three face widths (their median) at least, and their span with a face width
    around it; as large as the frame allows, and within it."""
    span = np.array([np.min(boxes, axis=0)[:2], np.max(boxes, axis=0)[2:]])  # (2, 2)
    width = float(np.median([b[2] - b[0] for b in boxes]))
    h, w = shape[:2]
    side = int(min(max(3.0 * width, *(span[1] - span[0] + 2.0 * width)), h, w))
    return _square_at(span.mean(axis=0), side, shape)


def _square_at(centre: np.ndarray, side: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(x, y, side) of the square of `side` centred at `centre` (x, y), moved into the frame."""
    h, w = shape[:2]
    x = int(np.clip(round(centre[0] - side / 2), 0, w - side))
    y = int(np.clip(round(centre[1] - side / 2), 0, h - side))
    return x, y, side


def _follow_square(square: tuple[int, int, int], face: np.ndarray,
                   shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The square a small face is tracked within, centred on the face (the one followed,
    else the largest) at every frame, so the face stays still in it (moved in steps, the mesh
    lost a face moving 5 px a frame when the square jumped a sixth of its side); its side
    changes only where the face has changed size by a quarter."""
    box = face_box(face)
    side = square[2]
    if not 0.75 <= (box[2] - box[0]) * 3.0 / side <= 1.25:
        return square_around([box], shape)
    return _square_at((box[:2] + box[2:]) / 2.0, side, shape)


def _starts(length: int, side: int) -> list[int]:
    """Where squares of `side` start along `length`, half a square apart, the last at the end."""
    if length <= side:
        return [0]
    return [*range(0, length - side, side // 2), length - side]


def _depth(face: np.ndarray, square: tuple[int, int, int, int]) -> float:
    """How far a face's (x0, y0, x1, y1) box sits inside a square, in face widths (a face
    cut by the square's edge is found worse, or partly)."""
    inside = min(face[0] - square[0], face[1] - square[1], square[2] - face[2],
                 square[3] - face[3])
    return float(inside / max(face[2] - face[0], 1.0))


def faces_apart(faces: list[np.ndarray], boxes: Sequence[np.ndarray],
                iou: float) -> list[np.ndarray]:
    """The faces whose box overlaps none of `boxes` (x0, y0, x1, y1) by `iou` or more."""
    return [face for face in faces if all(box_iou(face_box(face), box) < iou for box in boxes)]


def _distinct(faces: list[np.ndarray], iou: float = 0.3) -> list[np.ndarray]:
    """The faces, best first, less any overlapping one before it (the same face again)."""
    kept: list[np.ndarray] = []
    for face in faces:
        if all(box_iou(face_box(face), face_box(other)) < iou for other in kept):
            kept.append(face)
    return kept


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
