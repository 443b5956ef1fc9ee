"""Small builders shared by the foundation tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from streamer import landmarks as L


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether predicate() holds within timeout seconds (asked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def lid_gaps(lm: np.ndarray) -> np.ndarray:
    """(14,) lower − upper lid y for each lid pair (image y grows downwards)."""
    pairs = np.array(L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS)
    return lm[pairs[:, 1], 1] - lm[pairs[:, 0], 1]


def lip_gaps(lm: np.ndarray) -> np.ndarray:
    pairs = np.array(L.LIP_PAIRS)
    return lm[pairs[:, 1], 1] - lm[pairs[:, 0], 1]


def open_mouth(lm: np.ndarray, amount: float) -> np.ndarray:
    """Drop the jaw: lower lip, chin and jaw points move down by amount × IOD."""
    out = lm.copy()
    lower = sorted(
        {p for _, p in L.LIP_PAIRS}
        | {14, 17, 84, 314, 181, 405, 91, 321, 146, 375, 152, 148, 377, 176, 400, 18, 200, 199, 175}
    )
    out[lower, 1] += amount * L.iod(lm)
    return out


def shut_lips(lm: np.ndarray) -> np.ndarray:
    """Lower inner lips up onto the upper ones: no opening."""
    out = lm.copy()
    out[[lo for _, lo in L.LIP_PAIRS], :2] = out[[up for up, _ in L.LIP_PAIRS], :2]
    return out


def close_eyes(lm: np.ndarray) -> np.ndarray:
    """Upper lids down onto the lower lids."""
    out = lm.copy()
    for up, low in L.RIGHT_LID_PAIRS + L.LEFT_LID_PAIRS:
        out[up, :2] = out[low, :2] - [0.0, 0.3]
    return out


def widen_eyes(lm: np.ndarray, amount: float, lower: float = 0.0) -> np.ndarray:
    """Upper lids raised by `amount` of each eye's width at mid-lid (lower lids dropped by
    `lower`), less towards the corners (eyes opened wide in surprise); irises where they were."""
    out = lm.copy()
    for pairs, (a, b) in ((L.RIGHT_LID_PAIRS, (33, 133)), (L.LEFT_LID_PAIRS, (362, 263))):
        width = float(np.linalg.norm(lm[b, :2] - lm[a, :2]))
        for i, (up, down) in enumerate(pairs):
            arch = width * np.sin(np.pi * (i + 1) / (len(pairs) + 1))
            out[up, 1] -= amount * arch
            out[down, 1] += lower * arch
    return out


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Ry(yaw)·Rx(pitch)·Rz(roll), degrees, image axes (y down): the convention of
    streamer.geometry.rotation_to_euler and benchmarks.protocol."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def turn_head(lm: np.ndarray, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """The head turned by rotation(yaw, pitch, roll) about its skull-rigid centre."""
    c = lm[L.RIGID].mean(axis=0)
    return ((lm - c) @ rotation(yaw, pitch, roll).T + c).astype(np.float32)


def rotate_yaw(lm: np.ndarray, degrees: float) -> np.ndarray:
    """Turn the head about the vertical axis through the face centre."""
    return turn_head(lm, degrees)


def two_people(data_dir: Path, side: int = 400) -> np.ndarray:
    """A picture of two real people side by side, faces of about one size: Anne Hathaway
    (SadTalker_people_0, face ≈ 140 px) on the left, Einstein (≈ 116 px) on the right, each
    scaled into a side × side square on grey."""
    squares = []
    for name in ("SadTalker_people_0.png", "einstein.jpg"):
        image = cv2.imread(str(data_dir / "portraits" / name))
        h, w = image.shape[:2]
        s = side / max(h, w)
        small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        square = np.full((side, side, 3), 127, np.uint8)
        y0, x0 = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
        square[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        squares.append(square)
    return np.hstack(squares)


def flat_png(width: int, height: int) -> bytes:
    """A PNG of one grey, written row by row without the picture in memory: a few MB that say
    `width` x `height` (a decompression bomb at large sizes; 20000 x 10000: 2.6 MB, 1 s)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    deflate = zlib.compressobj(1)
    row = b"\x00" + b"\x80" * (width * 3)  # filter none, then RGB
    rows = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))
