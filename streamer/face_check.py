"""Whether a face the mesh found in a picture is a face: it must be found again, in the same
place, in the square around it mirrored and turned each way.

MediaPipe's face mesh finds "faces" on some pictures of animals: the shared dog photo, set
into plain pictures at 200 sizes and places, gave a face in 45 of them (the mesh's eyes on
the fur beside its nose), a cartoon alpaca in 6 of 200. The face detector's score does not
tell them apart (the dog's 0.55–0.77 against terracotta_warrior's 0.78), nor the mesh's
shape (its residual from the mean human mesh, 3D-aligned: the dog 0.09–0.13, people 0.06 at
the median and 0.18 at most). What does: a person's face is found again where it was in the
square mirrored and turned by TURN_DEGREES each way, and no animal's was in all three
(most were not found again mirrored; one was found mirrored and turned one way).

`python -m benchmarks.face_check`: of the 51 animal "faces" none is kept; of 527 people's
(the 24 shared portraits, the astronaut, every 15th frame of the driving clips and 40th of
the training clips) all are, each view's face within 0.33 IOD of the first (mean over 13
points: eye and mouth corners, irises, nose, chin, forehead; 0.033 at the 99th
percentile), the 0.33 on a head turned 45° with its eyes shut. Views of the whole picture
instead of the square kept the same faces; the square bounds a look's cost whatever the
picture's size. A picture's check takes 30 ms (einstein, the Mona Lisa) to 90 ms (the 2048²
photo_bw_young_man; 130 ms with whole-picture views).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.tracker import FaceTracker, face_box, faces_apart, square_around

# degrees the picture is turned about the face, each way
TURN_DEGREES = 15.0
# IOD: the largest mean distance between a face and the face found again for them to be one
# (people: 0.33 at most; the animals' faces found again in a view sat 0.03–1.0 IOD from
# where they were, so the views' misses, not this bound, turn them away)
MAX_DRIFT = 0.5
# the points compared, and each one's mirror image (right eye ↔ left eye, ...)
_POINTS = np.array([33, 133, 263, 362, 61, 291, 1, 152, 10, 468, 473, 13, 14])
_MIRRORED = np.array([263, 362, 33, 133, 291, 61, 1, 152, 10, 473, 468, 13, 14])

_View = tuple[np.ndarray, Callable[[np.ndarray], np.ndarray], np.ndarray]


def faces_seen_again(tracker: FaceTracker, image: np.ndarray) -> list[np.ndarray]:
    """The faces of a BGR picture (tracker: image mode) that are found again, in place, in
    the square around each mirrored and turned by TURN_DEGREES: (478, 3) float32 pixels
    each. Where faces are found and none is seen again, the picture's squares are looked at
    for others (FaceTracker.detect_in_squares): the whole picture's pass finds one face where
    a dog and a person are in view, the dog in 7 of 12 pictures tried, and misses a person's
    face under a fifth of the picture."""
    found = tracker.detect_all(image)
    kept = [face for face in found if seen_again(tracker, image, face)]
    if found and not kept:
        others = faces_apart(tracker.detect_in_squares(image), [face_box(f) for f in found], 0.3)
        kept = [face for face in others if seen_again(tracker, image, face)]
    return kept


def seen_again(tracker: FaceTracker, image: np.ndarray, face: np.ndarray) -> bool:
    """Whether `face` ((478, 3) pixels, found in `image`) is found again within MAX_DRIFT
    IOD in every view of the picture (looking no further once a view misses it)."""
    return all(drift <= MAX_DRIFT for drift in _drifts(tracker, image, face))


def view_drifts(tracker: FaceTracker, image: np.ndarray, face: np.ndarray) -> list[float]:
    """Per view (mirrored, turned +, turned −): how far the nearest face found there sits
    from `face`, in IODs (mean over `_POINTS`); inf where the view shows no face."""
    return list(_drifts(tracker, image, face))


def _drifts(tracker: FaceTracker, image: np.ndarray, face: np.ndarray) -> Iterator[float]:
    unit = max(L.iod(face), 1e-6)
    where = face[_POINTS, :2]
    for view, back, points in views(image, face):
        found = [float(np.linalg.norm(back(other[points, :2]) - where, axis=1).mean()) / unit
                 for other in tracker.detect_all(view)]
        yield min(found, default=np.inf)


def views(image: np.ndarray, face: np.ndarray) -> Iterator[_View]:
    """(picture, view pixels → image pixels, the view's points that are `_POINTS`) for the
    square of three face widths around the face (`square_around`: what a face is tracked
    within), mirrored and turned each way about the face."""
    x, y, side = square_around([face_box(face)], image.shape)
    square = image[y:y + side, x:x + side]
    yield (np.ascontiguousarray(square[:, ::-1]),
           lambda p: np.column_stack([x + side - 1 - p[:, 0], y + p[:, 1]]), _MIRRORED)
    centre = face[_POINTS, :2].mean(axis=0) - (x, y)
    for angle in (TURN_DEGREES, -TURN_DEGREES):
        turn = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
        back = cv2.invertAffineTransform(turn)
        back[:, 2] += (x, y)
        turned = cv2.warpAffine(square, turn, (side, side), borderMode=cv2.BORDER_REPLICATE)
        yield turned, lambda p, back=back: p @ back[:, :2].T + back[:, 2], _POINTS
