"""Paste the rendered crop back into the full-resolution portrait with a feathered seam.

Where the crop is the portrait's own texture (streamer.texture) and the portrait's face is
larger than the crop, those pixels are resampled from the full-resolution portrait through
the renderer's sampling map instead: a 2048² photo stays as sharp as the photo.
"""

from __future__ import annotations

from typing import Literal, get_args

import cv2
import numpy as np

from streamer import scattered
from streamer.portrait import CropBox, Portrait
from streamer.texture import Rendered, Texture

FEATHER = 0.04  # seam width, × crop side
# "auto" detail: the texture comes from the full-resolution portrait when the crop's footprint
# in it is at least this many times the crop's side. Below, the crop loses little (at 1.38,
# the self-reenactment clips, full detail scored face PSNR -0.16 dB and mouth SSIM -0.010
# over the six clips: see README, "Full detail")
DETAIL_MIN_SCALE = 1.5
Detail = Literal["auto", "full", "crop"]
DETAILS: tuple[Detail, ...] = get_args(Detail)  # the --detail choices


def full_detail(box: CropBox, detail: Detail = "auto") -> bool:
    """Whether the paste-back takes the texture from the full-resolution portrait."""
    return detail == "full" or (detail == "auto" and box.side >= DETAIL_MIN_SCALE * box.size)


class PasteBack:
    """Precomputes the crop's footprint in the portrait once; paste() runs per frame."""

    def __init__(self, portrait: Portrait, detail: Detail = "auto") -> None:
        self._image = portrait.image
        box = portrait.box
        self.full_detail = full_detail(box, detail)
        self._to_image = box.image_to_crop_matrix()  # crop pixel → image pixel
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
        self._strips = [  # each with the crop's weight and the portrait's
            (sl, np.ascontiguousarray(alpha[sl]), np.ascontiguousarray(1.0 - alpha[sl]))
            for sl in ((slice(0, iy0), slice(0, w)), (slice(iy1, h), slice(0, w)),
                       (slice(iy0, iy1), slice(0, ix0)), (slice(iy0, iy1), slice(ix1, w)))
            if alpha[sl].size
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

    def paste(self, crop: np.ndarray | Rendered) -> np.ndarray:
        """crop: (S, S, 3) uint8, or a renderer's Rendered → (H, W, 3) uint8 portrait with
        the crop blended in (its texture from the portrait itself, with full detail)."""
        if isinstance(crop, Rendered):
            if crop.texture is not None and self.full_detail:
                return self._blend_in(self._textured(crop.crop, crop.texture))
            crop = crop.crop
        x0, y0, x1, y1 = self._roi
        out = self._image.copy()
        region = out[y0:y1, x0:x1]  # the crop drawn straight into the copy's footprint
        drawn = cv2.warpAffine(crop, self._matrix, (x1 - x0, y1 - y0), dst=region,
                               flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        if drawn is not region:  # OpenCV made its own array (it does not for uint8 BGR)
            region[:] = drawn
        return self._feathered(out)

    def _blend_in(self, patch: np.ndarray) -> np.ndarray:
        """The footprint's patch (h, w, 3) uint8 into a copy of the portrait, seam feathered."""
        x0, y0, x1, y1 = self._roi
        out = self._image.copy()
        out[y0:y1, x0:x1] = patch
        return self._feathered(out)

    def _feathered(self, out: np.ndarray) -> np.ndarray:
        """out (a copy of the portrait with the footprint's patch in it) with the patch
        blended into the portrait over the seam, in place → out."""
        x0, y0, x1, y1 = self._roi
        region, below = out[y0:y1, x0:x1], self._image[y0:y1, x0:x1]
        for sl, alpha, beta in self._strips:  # one pass over uint8 each
            region[sl] = cv2.blendLinear(region[sl], below[sl], alpha, beta)
        return out

    def _textured(self, crop: np.ndarray, texture: Texture) -> np.ndarray:
        """The footprint's patch with the texture resampled from the portrait itself."""
        # Crop source pixels → portrait pixels at the crop's S² values, then spread over the
        # footprint exactly as the crop itself would be (the map is affine in its values).
        source = cv2.transform(texture.grid, self._to_image.astype(np.float32))
        x0, y0, x1, y1 = self._roi
        grid = cv2.warpAffine(source, self._matrix, (x1 - x0, y1 - y0),
                              flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        patch = cv2.remap(self._image, grid, None, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        if not texture.empty_box:
            self._lay_rest(patch, crop, texture)
        return patch

    def _lay_rest(self, patch: np.ndarray, crop: np.ndarray, texture: Texture) -> None:
        """Over the texture's box: patch ← weight · patch + (crop − weight · texture), each
        taken to the portrait's pixels (streamer.texture), at only the portrait pixels whose
        crop neighbours are not all texture (weight 1). The box of a backdrop
        (streamer.still_background) rings the whole head while its own pixels are a thin
        band: taking the whole box to the portrait's pixels cost the Mona Lisa's paste-back
        at the 256 crop 7 → 16 ms a frame, in 64-pixel tiles 11–14 ms (lab notes, "The
        paste-back's own pixels")."""
        cx0, cy0, cx1, cy1 = texture.box
        m, h, w = self._to_image, patch.shape[0], patch.shape[1]
        ox, oy = self._roi[0], self._roi[1]
        rx0 = int(np.clip(np.floor((cx0 - 1) * m[0, 0] + m[0, 2]) - ox, 0, w))
        ry0 = int(np.clip(np.floor((cy0 - 1) * m[1, 1] + m[1, 2]) - oy, 0, h))
        rx1 = int(np.clip(np.ceil((cx1 + 1) * m[0, 0] + m[0, 2]) - ox, 0, w))
        ry1 = int(np.clip(np.ceil((cy1 + 1) * m[1, 1] + m[1, 2]) - oy, 0, h))
        weight = texture.weight
        own = (weight < 1.0).view(np.uint8)  # crop pixels that are not the texture alone
        if rx1 <= rx0 or ry1 <= ry0 or not own.any():
            return
        local = self._matrix.copy()  # rectangle pixel → box pixel
        local[0, 2] += local[0, 0] * rx0 - cx0
        local[1, 2] += local[1, 1] * ry0 - cy0
        size = (rx1 - rx0, ry1 - ry0)
        if 3 * np.count_nonzero(own) > own.size:  # most of the box (a blend of shots): all of it
            rest = crop[cy0:cy1, cx0:cx1].astype(np.float32)
            rest -= weight[:, :, None] * texture.warped[cy0:cy1, cx0:cx1]
            flags = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
            at = cv2.warpAffine(weight, local, size, flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
            rest = cv2.warpAffine(rest, local, size, flags=flags,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
            region = patch[ry0:ry1, rx0:rx1]
            region[:] = np.clip(at[:, :, None] * region + rest + 0.5, 0, 255).astype(np.uint8)
            return
        # crop − weight · texture at those pixels (elsewhere the crop is the texture: 0)
        # (taken by flat index, each pixel as one row: numpy's (y, x) indexing was 3 × slower)
        bx, by = scattered.nonzero(own)
        at_crop = (by + cy0) * crop.shape[1] + (bx + cx0)
        at_box = by * weight.shape[1] + bx
        values = scattered.take(crop, at_crop).astype(np.float32)
        values -= np.take(weight, at_box)[:, None] * scattered.take(texture.warped, at_crop)
        rest = np.zeros((*weight.shape, 3), np.float32)
        scattered.pixels(rest)[at_box] = values
        # the portrait pixels a bilinear sample of the box reaches an own crop pixel from
        near = cv2.warpAffine(cv2.dilate(own, np.ones((3, 3), np.uint8)), local, size,
                              flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        xs, ys = scattered.nonzero(near)
        at_x = (xs * local[0, 0] + local[0, 2]).astype(np.float32)
        at_y = (ys * local[1, 1] + local[1, 2]).astype(np.float32)
        at_weight = scattered.remap_at(weight, at_x, at_y, border=1.0)
        at_rest = scattered.remap_at(rest, at_x, at_y, border=0.0)
        pixels = (ys + ry0) * w + (xs + rx0)
        # in place, the same operations in the same order (temporaries took 1.2 ms of 45 000
        # pixels)
        mixed = scattered.take(patch, pixels).astype(np.float32)
        mixed *= at_weight[:, None]
        mixed += at_rest
        mixed += 0.5
        scattered.put(patch, pixels, np.clip(mixed, 0, 255, out=mixed).astype(np.uint8))
