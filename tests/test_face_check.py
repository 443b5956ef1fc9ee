"""Enrollment's face check: a "face" the mesh finds on an animal is not kept, people's are."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.face_check import place
from streamer.cli import main
from streamer.errors import NoFaceError
from streamer.face_check import MAX_DRIFT, faces_seen_again, seen_again, view_drifts, views
from streamer.portrait import enroll_images
from streamer.tracker import FaceTracker
from streamer.video_io import read_image

# places of the shared animal pictures in a plain one where the face mesh finds a "face":
# (picture, canvas (h, w), width, x, y, grey, the views it is found again in)
ANIMAL_FACES = [
    ("no_face_dog.jpg", (480, 640), 200, 120, 140, 128, 0),
    ("no_face_dog.jpg", (480, 640), 320, 0, 80, 128, 0),
    ("no_face_dog.jpg", (720, 1280), 400, 360, 160, 128, 0),
    ("no_face_dog.jpg", (512, 512), 462, 18, 3, 117, 2),  # turned both ways, not mirrored
    ("no_face_cartoon_alpaca.jpg", (480, 640), 342, 274, 0, 70, 1),  # mirrored only
]


@pytest.fixture(scope="module")
def still():
    with FaceTracker(video=False) as tracker:
        yield tracker


@pytest.mark.parametrize(("name", "canvas", "side", "x", "y", "grey", "views_found"),
                         ANIMAL_FACES)
def test_an_animal_the_mesh_takes_for_a_face_is_not_enrolled(still, data_dir, tmp_path, name,
                                                             canvas, side, x, y, grey,
                                                             views_found):
    image = place(read_image(data_dir / "portraits" / name), canvas, side, x, y, grey)
    faces = still.detect_all(image)
    assert faces, "the mesh no longer sees a face here: pick another place"
    found = [sum(drift <= MAX_DRIFT for drift in view_drifts(still, image, face))
             for face in faces]
    assert max(found) == views_found < 3
    assert faces_seen_again(still, image) == []
    with pytest.raises(NoFaceError, match="no human face found in animal.png"):
        enroll_images([image], names=["animal.png"])
    picture = tmp_path / "animal.png"
    cv2.imwrite(str(picture), image)
    assert main(["enroll", str(picture), "-o", str(tmp_path / "animal.headcast")]) == 2
    assert not (tmp_path / "animal.headcast").exists()


def test_every_shared_portrait_is_seen_again(still, data_dir):
    names = sorted(p.name for p in (data_dir / "portraits").iterdir()
                   if p.suffix in (".jpg", ".png") and not p.name.startswith("no_face"))
    assert len(names) >= 20
    for name in names:
        image = read_image(data_dir / "portraits" / name)
        face = still.detect(image)
        assert face is not None and seen_again(still, image, face), name


@pytest.mark.parametrize("lean", [-30.0, 0.0, 30.0])
def test_a_leaning_head_is_seen_again_where_it_is(still, astronaut_bgr, lean):
    turn = cv2.getRotationMatrix2D((256.0, 160.0), lean, 1.0)
    image = cv2.warpAffine(astronaut_bgr, turn, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    face = still.detect(image)
    drifts = view_drifts(still, image, face)
    assert len(drifts) == 3 and max(drifts) < 0.1 < MAX_DRIFT
    assert len(faces_seen_again(still, image)) == 1


def test_each_view_maps_its_points_back_onto_the_picture(astronaut_bgr):
    face = np.zeros((478, 3), np.float32)
    face[:, :2] = np.random.default_rng(0).uniform(200, 260, (478, 2))  # a face 60 px wide
    h, w = astronaut_bgr.shape[:2]
    marks = np.zeros((h, w), np.uint8)
    marks[200, 300] = 255  # one bright pixel, followed through each view
    for (view, back, _), (mark, _, _) in zip(views(astronaut_bgr, face), views(
            cv2.merge([marks] * 3), face), strict=True):
        assert view.shape[2] == 3 and 175 <= view.shape[0] == view.shape[1] <= 180  # 3 widths
        ys, xs = np.nonzero(mark[:, :, 0] > 60)
        seen = back(np.array([[xs.mean(), ys.mean()]]))[0]
        assert np.allclose(seen, (300, 200), atol=1.0)


def test_a_person_beside_a_dog_is_enrolled(still, dog_beside_a_person):
    """The whole picture's pass finds only the dog's "face", which is not seen again; the
    squares are then looked at, and the astronaut's face, too small for that pass, is
    kept and enrolled."""
    image = dog_beside_a_person
    faces = still.detect_all(image)
    assert len(faces) == 1 and faces[0][:468, 0].mean() < 640, "the mesh sees no dog here"
    kept = faces_seen_again(still, image)
    assert len(kept) == 1 and kept[0][:468, 0].mean() > 990
    portrait = enroll_images([image])
    assert portrait.landmarks[:468, 0].mean() > 990


def test_the_beside_table_says_so_where_no_animal_face_is_found(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m benchmarks.face_check --beside 1`: the one try finds neither animal's
    "face" alone, so nobody is taken up; its rows say so (it stopped with a ValueError on
    the max of no frames)."""
    from benchmarks.face_check import beside

    beside(data_dir, 1)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| no_")]
    assert [row.split(" | ")[1:] for row in rows] == [["0", "0", "0", "0", "0 (— / —)", "0 |"]] * 2
