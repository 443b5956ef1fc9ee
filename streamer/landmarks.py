"""Named index sets of MediaPipe's 478-point face mesh (468 mesh + 10 iris)."""

from __future__ import annotations

import numpy as np

# fmt: off
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109]
LIPS_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37,
              39, 40, 185]
# Inner lip contour, in order around the mouth opening (a closed polygon).
LIPS_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82,
              81, 80, 191]
# (upper, lower) inner-lip pairs, left to right: the mouth opening is their gap.
LIP_PAIRS = [(191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402),
             (310, 318), (415, 324)]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_IRIS = [468, 469, 470, 471, 472]  # centre, then its rim
LEFT_IRIS = [473, 474, 475, 476, 477]
# (upper lid, lower lid) pairs per eye, corner to corner.
RIGHT_LID_PAIRS = [(246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154),
                   (173, 155)]
LEFT_LID_PAIRS = [(466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381),
                  (398, 382)]
RIGHT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
LEFT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
NOSE = [1, 4, 6, 168, 98, 327]
# Around the mouth: these follow smiles and the jaw.
CHEEKS = [50, 280, 205, 425, 57, 287, 43, 273, 106, 335, 182, 406, 18, 200, 199, 175]
# Points that move with the skull, not with expressions: used to estimate head pose.
RIGID = [10, 109, 338, 67, 297, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 263, 362, 127,
         356, 234, 454, 93, 323, 98, 327]
MOUTH_REGION = sorted(set(LIPS_OUTER + LIPS_INNER + [18, 200, 199, 175, 152, 148, 377, 176,
                                                      400, 57, 287, 43, 273, 106, 335, 182,
                                                      406, 212, 432, 202, 422]))
# fmt: on

# Control points of the dense warp: a mesh subset, dense where expressions happen (lips,
# lids), sparse where the face moves smoothly (oval, brows, cheeks, nose). Fewer points make
# the per-frame spline cheaper; it interpolates smoothly between them.
WARP_POINTS = sorted(set(FACE_OVAL[::2] + LIPS_OUTER + LIPS_INNER + RIGHT_EYE + LEFT_EYE
                         + RIGHT_BROW[::2] + LEFT_BROW[::2] + NOSE + CHEEKS
                         + [RIGHT_IRIS[0], LEFT_IRIS[0]]))

# Protocol landmarks (see benchmarks/protocol.py).
EYE_OUTER_R, EYE_OUTER_L = 33, 263


def iod(landmarks: np.ndarray) -> float:
    """Inter-ocular distance: |p33 − p263| in the image plane. landmarks: (478, ≥2)."""
    return float(np.linalg.norm(landmarks[EYE_OUTER_R, :2] - landmarks[EYE_OUTER_L, :2]))


def mouth_gap(landmarks: np.ndarray) -> float:
    """Inner-lip opening |p13 − p14| in IODs. landmarks: (478, ≥2)."""
    return float(np.linalg.norm(landmarks[13, :2] - landmarks[14, :2]) / max(iod(landmarks), 1e-6))


def eye_gap(landmarks: np.ndarray) -> float:
    """How open the eyes are: the mean lid gap over both eyes' lid pairs, each over its
    eye's width (outer to inner corner). landmarks: (478, ≥2)."""
    shares = []
    for pairs, corners in ((RIGHT_LID_PAIRS, (EYE_OUTER_R, 133)),
                           (LEFT_LID_PAIRS, (EYE_OUTER_L, 362))):
        idx = np.array(pairs)
        gaps = np.linalg.norm(landmarks[idx[:, 0], :2] - landmarks[idx[:, 1], :2], axis=1)
        width = np.linalg.norm(landmarks[corners[0], :2] - landmarks[corners[1], :2])
        shares.append(gaps.mean() / max(float(width), 1e-6))
    return float(np.mean(shares))


def face_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around the 468 mesh points."""
    pts = landmarks[:468, :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)
