import numpy as np

from streamer.segment import face_region, person_masks


def test_the_person_is_told_from_the_background(astronaut_portrait):
    """On the astronaut photo the face, hair and suit are the person; the flag and the wall
    behind her are background, a bit more than half of the crop."""
    p = astronaut_portrait
    mask = p.person_masks[0]
    assert mask.shape == p.crop.shape[:2] and mask.dtype == np.uint8
    face = face_region(mask.shape[0], p.crop_landmarks) > 0
    assert (mask[face] == 255).all()
    background = mask < 128
    assert 0.3 < background.mean() < 0.75
    nose = p.crop_landmarks[1, :2].astype(int)
    assert mask[nose[1], nose[0]] == 255


def test_the_face_is_never_background(astronaut_portrait):
    """Where segmentation sees no one (a flat grey picture), the face outline still counts
    as the person: a painting's face must move with the head, never stay behind."""
    lm = astronaut_portrait.crop_landmarks
    grey = np.full((1, 256, 256, 3), 128, np.uint8)
    mask = person_masks(grey, lm[None])[0]
    face = face_region(256, lm) > 0
    assert (mask[face] == 255).all()
    assert (mask[~face] < 128).mean() > 0.9
    # The outline's region holds every mesh point.
    pts = np.round(lm[:468, :2] - 0.5).astype(int)
    assert face[pts[:, 1], pts[:, 0]].mean() > 0.99


def test_no_crops_no_masks():
    assert person_masks(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 478, 3))).shape == (0, 8, 8)
