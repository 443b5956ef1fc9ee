"""streamer/scattered.py: a band of an image's pixels read and written by flat index."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer import scattered


def test_a_band_of_pixels_is_read_and_written_in_place(astronaut_bgr):
    image = astronaut_bgr.copy()
    band = np.zeros(image.shape[:2], np.uint8)
    cv2.circle(band, (250, 200), 120, 1, 9)
    x, y = scattered.nonzero(band)
    ys, xs = np.nonzero(band)
    assert np.array_equal(x, xs) and np.array_equal(y, ys)  # the same pixels, in row order
    index = y * image.shape[1] + x
    assert np.array_equal(scattered.take(image, index), image[y, x])
    scattered.put(image, index, 255 - image[y, x])
    assert np.array_equal(image[y, x], 255 - astronaut_bgr[y, x])
    untouched = band == 0
    assert np.array_equal(image[untouched], astronaut_bgr[untouched])
    assert len(scattered.nonzero(np.zeros((4, 4), np.uint8))[0]) == 0


def test_a_write_that_would_be_lost_is_refused(astronaut_bgr):
    """A view that is not one block of memory (a window of a larger image) cannot be taken
    as its pixels in a row: the write would go to a copy."""
    window = astronaut_bgr.copy()[10:50, 10:50]
    with pytest.raises(AttributeError):
        scattered.put(window, np.arange(3), np.zeros((3, 3), np.uint8))


def test_samples_at_many_points_match_a_remap_of_the_whole_image():
    rng = np.random.default_rng(0)
    image = rng.random((64, 80, 3), dtype=np.float32)
    n = 9000  # more than one row of 4096
    x = rng.uniform(-2, 82, n).astype(np.float32)
    y = rng.uniform(-2, 66, n).astype(np.float32)
    got = scattered.remap_at(image, x, y, border=0.5)
    want = cv2.remap(image, x[None], y[None], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(0.5,) * 4)[0]
    assert got.shape == (n, 3) and np.array_equal(got, want)
    outside = (x < -1) | (y < -1) | (x > 80) | (y > 64)
    assert outside.any() and np.all(got[outside] == 0.5)  # every channel's border
    grey = scattered.remap_at(image[:, :, 1].copy(), x, y, border=1.0)
    inside = (x >= 0) & (y >= 0) & (x <= 79) & (y <= 63)  # no border in the sample
    assert grey.shape == (n,) and np.array_equal(grey[inside], want[inside, 1])
    assert np.all(grey[outside] == 1.0)
    assert scattered.remap_at(image, x[:0], y[:0], border=0.0).shape == (0, 3)
