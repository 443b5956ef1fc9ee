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

FACE_GROW = 1.05  # the face outline scaled about its centre by this much is always the person


def _segmenter():  # -> mediapipe SelfieSegmentation
    from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation

    return SelfieSegmentation(model_selection=0)


def person_masks(crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """crops (N, S, S, 3) uint8 BGR, landmarks (N, 478, ≥2) crop pixels → (N, S, S) uint8,
    255 on the person (the segmentation's probability ≥ 0.5, or the face), 0 elsewhere."""
    out = np.zeros(crops.shape[:3], np.uint8)
    if len(crops) == 0:
        return out
    with _segmenter() as segmenter:
        for i, (crop, lm) in enumerate(zip(crops, landmarks, strict=True)):
            rgb = np.ascontiguousarray(crop[:, :, ::-1])
            soft = segmenter.process(rgb).segmentation_mask
            mask = np.where(soft >= 0.5, np.uint8(255), np.uint8(0))
            np.maximum(mask, face_region(crop.shape[0], lm), out=mask)
            out[i] = mask
    return out


def face_region(size: int, lm: np.ndarray) -> np.ndarray:
    """(S, S) uint8, 255 inside the face outline grown by FACE_GROW about its centre."""
    oval = lm[L.FACE_OVAL, :2].astype(np.float64)
    centre = oval.mean(axis=0)
    grown = centre + FACE_GROW * (oval - centre)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(grown - 0.5).astype(np.int32)], 255)
    return mask
