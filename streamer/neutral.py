"""Which frame of a driving clip `animate` takes as the driver's resting face, its neutral.

Relative motion transfer applies the driver's change from the neutral to the portrait's own
face, so the neutral has to be a face at rest. `animate` took the clip's first face, and a
clip that starts mid-word or mid-blink made that a poor one (woman_long_expressive from its
frame 56, the mouth open 0.40 IOD there, driving the Mona Lisa: her mouth opened 0.05 IOD at
most over 150 frames, where from frame 0 it opened 0.42; from frame 50, the eyes shut there,
her eyes never closed: 0.39 of their width at the least, against 0.16). The first face is
still taken where it is at rest, as in the shared clips; where it is not, the first frame
that is; where none is, the one nearest to rest.

At rest: the eyes open (not mid-blink), and the mouth open no wider than the portrait's own
(or, where the portrait's is shut, than the driver's shut mouth), give or take REST_MOUTH:
whatever the driver's neutral shows, the portrait's own face stands for. Where the head
points is left to the first face: a clip's own typical pose need not be its rest
(few_shot_woman_outdoor holds her head 17° more tilted than at its start most of the time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamer import landmarks as L

# At rest: the mouth open at most REST_MOUTH IOD more than the portrait's, or than the
# driver's closed mouth (its opening's CLOSED_QUANTILE) where that is wider; the eyes open
# at least REST_EYES of their median openness over the clip (a blink: under 0.25 of it).
CLOSED_QUANTILE = 10.0
REST_MOUTH = 0.04
REST_EYES = 0.8


def rest_distances(mouth: np.ndarray, eyes: np.ndarray, portrait_mouth: float) -> np.ndarray:
    """How far each of a clip's faces is from rest, in allowances (≤ 1: at rest), judged
    against the clip's own faces: mouth and eyes, (N,) arrays of their L.mouth_gap and
    L.eye_gap; portrait_mouth: the portrait's own L.mouth_gap."""
    shut = max(float(np.percentile(mouth, CLOSED_QUANTILE)), portrait_mouth)
    mouth_over = (mouth - shut) / REST_MOUTH
    eyes_under = (1.0 - eyes / max(float(np.median(eyes)), 1e-6)) / (1.0 - REST_EYES)
    return np.maximum(mouth_over, eyes_under)


def rest_frame(track: Sequence[np.ndarray | None], portrait: np.ndarray) -> int | None:
    """The index of the frame of track ((478, 3) landmarks, or None where no face) to take as
    the neutral for the portrait's landmarks (see the module docstring); None where the
    track has no face."""
    seen = [i for i, landmarks in enumerate(track) if landmarks is not None]
    if not seen:
        return None
    faces = [track[i] for i in seen]
    past = rest_distances(np.array([L.mouth_gap(f) for f in faces]),  # type: ignore[arg-type]
                          np.array([L.eye_gap(f) for f in faces]),  # type: ignore[arg-type]
                          L.mouth_gap(portrait))
    at_rest = np.flatnonzero(past <= 1.0)
    return seen[int(at_rest[0]) if at_rest.size else int(np.argmin(past))]
