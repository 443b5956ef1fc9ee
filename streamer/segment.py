"""Where a portrait crop shows the person (head, hair, neck, shoulders) and where the
background, so the warp can leave the background still (streamer/renderer.py).

MediaPipe's selfie segmentation (its model ships in the mediapipe wheel; nothing is
downloaded) gives the person's probability at enrollment, kept where it is ≥ 0.5 (the
renderer needs no more than that, and the file stores 8 pixels a byte). The face itself must
never be taken for background (a painting's dark varnish or a sculpture's clay can read as
either), so the face mesh's outline, grown by FACE_GROW around its centre, always counts as
the person.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.quiet import stderr_silenced

FACE_GROW = 1.05  # the face outline scaled about its centre by this much is always the person
# A face MediaPipe's mesh found counts as a person's where the segmentation's probability,
# averaged inside its outline shrunk to PERSON_CORE about its centre, is at least
# PERSON_SHARE. Faces of people, photographed, painted or carved (SadTalker_art_11,
# terracotta_warrior), read 1.0; the "face" it finds in the blurred room behind
# few_shot_woman_indoor (frames 221-230 in image mode, 0.80-0.88 of her size) 0.11-0.27.
PERSON_SHARE = 0.5
PERSON_CORE = 0.8


def _segmenter():  # -> mediapipe SelfieSegmentation
    """Opened and run once on a blank picture with its C++ chatter silenced: its first
    read printed three lines of TF Lite and absl start-up to the terminal (`enroll` said
    "W0000 … Feedback manager requires a model with a single signature inference")."""
    from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation

    with stderr_silenced():
        segmenter = SelfieSegmentation(model_selection=0)
        segmenter.process(np.zeros((64, 64, 3), np.uint8))
    return segmenter


def person_masks(crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """crops (N, S, S, 3) uint8 BGR, landmarks (N, 478, ≥2) crop pixels → (N, S, S) uint8,
    255 on the person (the segmentation's probability ≥ 0.5, or the face), 0 elsewhere."""
    out = np.zeros(crops.shape[:3], np.uint8)
    if len(crops) == 0:
        return out
    with _segmenter() as segmenter:
        for i, (crop, lm) in enumerate(zip(crops, landmarks, strict=True)):
            rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
            soft = segmenter.process(rgb).segmentation_mask
            mask = np.where(soft >= 0.5, np.uint8(255), np.uint8(0))
            np.maximum(mask, face_region(crop.shape[0], lm), out=mask)
            out[i] = mask
    return out


def face_region(size: int, lm: np.ndarray) -> np.ndarray:
    """(S, S) uint8, 255 inside the face outline grown by FACE_GROW about its centre."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(_outline(lm, FACE_GROW) - 0.5).astype(np.int32)], 255)
    return mask


def _outline(lm: np.ndarray, scale: float) -> np.ndarray:
    """The face mesh's outline (pixels) scaled about its centre."""
    oval = lm[L.FACE_OVAL, :2].astype(np.float64)
    centre = oval.mean(axis=0)
    return centre + scale * (oval - centre)


class PersonCheck:
    """Which of several faces found in a picture are on a person, by the selfie segmentation
    (opened on first use; close() when done). Only asked where a picture shows several faces:
    one face is taken as it is."""

    def __init__(self) -> None:
        self._segmenter = None

    def persons(self, image: np.ndarray, faces: list[np.ndarray]) -> list[np.ndarray]:
        """The faces (each (478, ≥2) pixels of the BGR image) on a person; all of them where
        there are fewer than two, or where none is (the check only ever narrows a choice)."""
        if len(faces) < 2:
            return faces
        kept = [f for f, share in zip(faces, self.shares(image, faces), strict=True)
                if share >= PERSON_SHARE]
        return kept or faces

    def shares(self, image: np.ndarray, faces: list[np.ndarray]) -> list[float]:
        """Mean person probability inside each face's outline shrunk to PERSON_CORE."""
        if self._segmenter is None:
            self._segmenter = _segmenter()
        soft = self._segmenter.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).segmentation_mask
        shares = []
        for face in faces:
            core = np.zeros(image.shape[:2], np.uint8)
            cv2.fillPoly(core, [np.round(_outline(face, PERSON_CORE)).astype(np.int32)], 255)
            inside = soft[core > 0]
            shares.append(float(inside.mean()) if inside.size else 0.0)
        return shares

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def __enter__(self) -> PersonCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
