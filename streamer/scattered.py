"""A scattered set of an image's pixels, read and written in place.

Some layers cover a thin band inside a large box: the wall a head uncovers rings the whole
head (streamer.still_background), so working over its box touches ten to thirty times the
pixels it changes. These helpers take the band's pixels by their flat index instead, each
colour pixel moved as one 3-byte value (numpy's fancy indexing over (y, x, channel) is
several times slower; lab notes, "The paste-back's own pixels").
"""

from __future__ import annotations

import cv2
import numpy as np


def nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y (int32) of the nonzero pixels of a (h, w) uint8 mask (cv2.findNonZero: several
    times faster than np.nonzero), in row order."""
    points = cv2.findNonZero(mask)
    if points is None:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    x, y = points.reshape(-1, 2).T
    return x, y


def pixels(image: np.ndarray) -> np.ndarray:
    """(H·W, C) view of a C-contiguous (H, W, C) image; raises where that would be a copy
    (a write through it would be lost)."""
    flat = image.view()
    flat.shape = (-1, image.shape[2])
    return flat


def take(image: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(N, C) pixels of an (H, W, C) image at flat pixel indices (y · W + x)."""
    return np.take(pixels(image), index, axis=0)


def put(image: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """Write (N, 3) uint8 values into a C-contiguous (H, W, 3) uint8 image at flat pixel
    indices, in place."""
    assert image.dtype == np.uint8 and values.dtype == np.uint8
    whole = pixels(image).view("V3")  # one 3-byte value per pixel
    whole[index, 0] = np.ascontiguousarray(values).view("V3")[:, 0]


def remap_at(image: np.ndarray, x: np.ndarray, y: np.ndarray, border: float) -> np.ndarray:
    """Bilinear samples of an (h, w) or (h, w, C) float32 image at N points (x, y float32
    pixel coordinates; `border` outside) → (N,) or (N, C) float32. The points are laid out
    in rows of at most 4096 (remap takes maps under 32767 wide)."""
    n = len(x)
    if n == 0:
        return np.zeros((0, *image.shape[2:]), np.float32)
    cols = min(n, 4096)
    rows = -(-n // cols)
    map_x = np.full(rows * cols, -10.0, np.float32)
    map_y = np.full(rows * cols, -10.0, np.float32)
    map_x[:n], map_y[:n] = x, y
    out = cv2.remap(image, map_x.reshape(rows, cols), map_y.reshape(rows, cols),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(border,) * 4)
    return out.reshape(rows * cols, -1)[:n].reshape((n, *image.shape[2:]))
