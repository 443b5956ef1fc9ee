"""Which face of a picture a portrait is made from, where the picture shows several."""

from __future__ import annotations

import numpy as np

from streamer.errors import FaceChoiceError
from streamer.tracker import box_area

# A face at least this large (side of its landmarks' box) against the largest one is a
# rival: with two such faces, taking the larger one is a guess the user has to confirm. A
# face in the background, smaller than this, leaves the largest one the portrait.
RIVAL_SIZE = 0.7


def face_size(landmarks: np.ndarray) -> float:
    """Side of the square of the landmarks' box area, pixels."""
    return float(np.sqrt(box_area(landmarks)))


def choose_face(faces: list[np.ndarray], image: str, face: int | None = None
                ) -> np.ndarray | None:
    """The face of the picture called `image` in messages (its file, or "portrait image N")
    to make the portrait from.

    faces: the faces found in it (on people: streamer.segment.PersonCheck). face=None: the
    only face, or the largest where every other is smaller than RIVAL_SIZE of it; face=N:
    the N-th from the left (1 = the leftmost).
    None where no face was found. Raises FaceChoiceError where several faces are of about
    one size and none was chosen, or where face N is not in the picture."""
    if not faces:
        return None
    by_x = sorted(faces, key=lambda f: float(f[:468, 0].mean()))
    where = ", ".join(f"{i} at x = {f[:468, 0].mean():.0f} px" for i, f in enumerate(by_x, 1))
    if face is not None:
        if not 1 <= face <= len(by_x):
            raise FaceChoiceError(
                f"{image} shows {len(by_x)} face(s) ({where}); "
                f"--face {face} is not one of them"
            )
        return by_x[face - 1]
    sizes = [face_size(f) for f in faces]
    largest = int(np.argmax(sizes))
    rivals = sum(s >= RIVAL_SIZE * sizes[largest] for s in sizes)
    if rivals > 1:
        count = f"{len(faces)} faces" + ("" if rivals == len(faces) else f", {rivals} of them")
        raise FaceChoiceError(
            f"{image} shows {count} of about one size (left to right: "
            f"{where}): crop it to one face, or choose one by its number, 1 for the leftmost "
            "(`--face N` on enroll and animate, whose file every command takes; the Face field "
            "of `headcast serve`'s page; `POST /portrait?face=N`)"
        )
    return faces[largest]
