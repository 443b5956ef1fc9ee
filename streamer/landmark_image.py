"""The landmark image y: face-mesh contours drawn as coloured lines (Zakharov et al. 2019,
sec. 3.1: "rasterized landmarks ... line segments of different colours"). The neural
generator, embedder and discriminator see faces through it; training (models/) and the
runtime draw it with this one function so they agree pixel for pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer import mesh_contours as C

# Contours and their colours (BGR); each region gets its own so the network can tell a lip
# line from a lid line where they come close.
_REGIONS: tuple[tuple[tuple[tuple[int, int], ...], tuple[int, int, int]], ...] = (
    (C.FACE_OVAL, (255, 255, 255)),
    (C.LEFT_EYEBROW, (0, 255, 255)),
    (C.RIGHT_EYEBROW, (0, 255, 255)),
    (C.NOSE, (255, 0, 255)),
    (C.LEFT_EYE, (255, 128, 0)),
    (C.RIGHT_EYE, (255, 128, 0)),
    (C.LEFT_IRIS, (0, 255, 0)),
    (C.RIGHT_IRIS, (0, 255, 0)),
    (C.LIPS, (0, 0, 255)),
)
_SEGMENTS = [(np.array(sorted(edges), np.int32), colour) for edges, colour in _REGIONS]
_SHIFT = 4  # fixed-point sub-pixel coordinates for cv2 drawing


def landmark_image(landmarks: np.ndarray, size: int) -> np.ndarray:
    """landmarks: (478, ≥2) crop pixels (pixel centres at i + 0.5) → (size, size, 3) uint8.

    Line width scales with the crop so a 256 and a 512 image look alike."""
    image = np.zeros((size, size, 3), np.uint8)
    thickness = max(1, round(size / 256))
    pts = np.round((landmarks[:, :2] - 0.5) * (1 << _SHIFT)).astype(np.int32)
    for edges, colour in _SEGMENTS:  # (E, 2) index pairs → E two-point polylines in one call
        cv2.polylines(image, pts[edges], False, colour, thickness, cv2.LINE_AA, _SHIFT)
    return image
