"""Paste the rendered crop back into the full-resolution portrait with a feathered seam."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.portrait import Portrait

FEATHER = 0.04  # seam width, × crop side


class PasteBack:
    """Precomputes the crop's footprint in the portrait once; paste() runs per frame."""

    def __init__(self, portrait: Portrait) -> None:
        self._image = portrait.image
        box = portrait.box
        h, w = self._image.shape[:2]
        x0, y0 = max(int(np.floor(box.x0)), 0), max(int(np.floor(box.y0)), 0)
        x1, y1 = min(int(np.ceil(box.x0 + box.side)), w), min(int(np.ceil(box.y0 + box.side)), h)
        self._roi = (x0, y0, x1, y1)
        # crop pixel = (image pixel − origin) · scale, in integer-pixel form for warpAffine
        a = box.scale
        self._matrix = np.array(
            [[a, 0, (0.5 - box.x0 + x0) * a - 0.5], [0, a, (0.5 - box.y0 + y0) * a - 0.5]],
            np.float64,
        )
        alpha = self._feather(box.size, x1 - x0, y1 - y0)
        # Only the seam strips are blended; inside them the crop is copied as is.
        h, w = alpha.shape
        rows, cols = np.nonzero(alpha >= 1.0)
        if rows.size:
            iy0, iy1, ix0, ix1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        else:  # a footprint narrower than the seam: blend all of it
            iy0 = iy1 = h // 2
            ix0 = ix1 = w // 2
        self._inner = (slice(iy0, iy1), slice(ix0, ix1))
        self._strips = [
            (sl, alpha[sl][:, :, None])
            for sl in ((slice(0, iy0), slice(0, w)), (slice(iy1, h), slice(0, w)),
                       (slice(iy0, iy1), slice(0, ix0)), (slice(iy0, iy1), slice(ix1, w)))
        ]

    def _feather(self, size: int, w: int, h: int) -> np.ndarray:
        """(h, w) float32 weight of the rendered crop: 1 inside, 0 at the crop's edge."""
        ramp = max(2.0, FEATHER * size)
        t = np.arange(size, dtype=np.float32) + 0.5
        edge = np.clip(np.minimum(t, size - t) / ramp, 0.0, 1.0)
        square = np.minimum(edge[:, None], edge[None, :])
        alpha = cv2.warpAffine(
            square, self._matrix, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
        )
        return alpha

    def paste(self, crop: np.ndarray) -> np.ndarray:
        """crop: (S, S, 3) uint8 → (H, W, 3) uint8 portrait with the crop blended in."""
        x0, y0, x1, y1 = self._roi
        out = self._image.copy()
        patch = cv2.warpAffine(
            crop,
            self._matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        region = out[y0:y1, x0:x1]
        region[self._inner] = patch[self._inner]
        for sl, alpha in self._strips:
            below = region[sl].astype(np.float32)
            region[sl] = (below + alpha * (patch[sl] - below) + 0.5).astype(np.uint8)
        return out
