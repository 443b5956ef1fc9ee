"""The rendered crop's own texture, for a paste-back at the portrait's full resolution.

A renderer draws at a fixed crop (256 or 512), but most of what it draws is the portrait
itself, resampled through a sampling map. When the portrait's face is larger than the crop
(a 2048² photo, any portrait at the 256 crop) pasting the crop back blurs it: the texture
went through a downscale and an upscale. So a renderer can also say which part of its crop
is that texture and where it was sampled from; the paste-back then resamples those pixels
from the full-resolution portrait through the same map and keeps only the rest (the drawn
mouth, the generator's pixels) from the crop:

    crop = weight · remap(rendered shot, grid) + rest,   weight 1 and rest 0 outside `box`
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 crop pixels, end exclusive


@dataclass(frozen=True)
class Texture:
    """Where a rendered crop is the rendered shot's texture (see the module docstring).

    grid: (S, S, 2) float32, the source pixel in the rendered shot's crop of each crop pixel
    warped: (S, S, 3) uint8, that shot's crop resampled through grid (the texture at the crop)
    box: the part of the crop that is not the texture alone (empty: none)
    weight: (h, w) float32 0–1 over box, the texture's share of each crop pixel there
    """

    grid: np.ndarray
    warped: np.ndarray
    box: Box = (0, 0, 0, 0)
    weight: np.ndarray = field(default_factory=lambda: np.ones((0, 0), np.float32))

    @property
    def empty_box(self) -> bool:
        x0, y0, x1, y1 = self.box
        return x1 <= x0 or y1 <= y0

    def covered(self, box: Box, alpha: np.ndarray) -> Texture:
        """The texture under a layer of coverage alpha ((h, w) float32 0–1 over box): its
        share there shrinks by (1 − alpha)."""
        if self.empty_box:
            return replace(self, box=box, weight=(1.0 - alpha).astype(np.float32))
        x0, y0 = min(self.box[0], box[0]), min(self.box[1], box[1])
        x1, y1 = max(self.box[2], box[2]), max(self.box[3], box[3])
        weight = np.ones((y1 - y0, x1 - x0), np.float32)
        _region(weight, self.box, (x0, y0))[:] = self.weight
        _region(weight, box, (x0, y0))[:] *= 1.0 - alpha
        return replace(self, box=(x0, y0, x1, y1), weight=weight)

    def scaled(self, share: float) -> Texture:
        """The texture as `share` of a blend with other pixels (other shots)."""
        s = self.grid.shape[0]
        whole = self.covered((0, 0, s, s), np.zeros((s, s), np.float32))
        return replace(whole, weight=whole.weight * np.float32(share))


def _region(array: np.ndarray, box: Box, origin: tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return array[y0 - origin[1] : y1 - origin[1], x0 - origin[0] : x1 - origin[0]]


@dataclass(frozen=True)
class Rendered:
    """What a renderer made of one frame: the crop, and its texture when it has one."""

    crop: np.ndarray  # (S, S, 3) uint8 BGR
    texture: Texture | None = None
