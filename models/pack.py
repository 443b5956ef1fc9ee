"""python -m models.pack PREPARED PACKED, and --unpack PACKED PREPARED: prepared training
data (models/prepare.py) in a form small enough to carry to a training machine.

models.prepare keeps raw crops: 4.7 GB for ../shared/data at 512², every second frame. Packed,
each video's crops are one H.264 stream (x264, 4:4:4 chroma, CRF 22 by default: 42–43 dB
PSNR against the raw crops) and its landmarks int16 sixteenths of a pixel, delta-coded along
time and zipped: 21.9 MiB for the same 53 videos. Unpacking decodes with OpenCV, in parallel
processes, and writes what models.prepare wrote (frames.npy, landmarks.npy, meta.json,
index.json). Rounding to 1/16 px can put two landmarks of a frame on one spot; the warp's
spline takes its least-squares solution then (streamer.warp_inputs.solve_tps).

  PACKED/index.json        models.prepare's index
  PACKED/<video>.mp4       the crops (BGR in, BGR out)
  PACKED/<video>.npz       landmarks: `delta` (N, 478, 3) sixteenths, cumulative sum = value
  PACKED/<video>.json      models.prepare's meta.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

STEPS_PER_PIXEL = 16  # landmark precision of a packed file
FPS = 15  # the stream's nominal rate (frames are crops, not a clip to watch)


class PackError(ValueError):
    """A packed folder or a prepared one that cannot be read or written as such."""


def pack(prepared: Path, packed: Path, crf: int = 22) -> int:
    """Pack every video of a models.prepare folder; returns the number of frames."""
    index = _index(prepared)
    first = index["videos"][0]["name"] if index["videos"] else None
    if first is not None and not (prepared / first / "frames.npy").is_file():
        # a packed folder given to pack: it had failed on frames.npy, an empty dest left
        raise PackError(f"{prepared} holds no models.prepare frames ({first}/frames.npy): "
                        "is it a packed folder? unpack it with --unpack")
    packed.mkdir(parents=True, exist_ok=True)
    total = 0
    for entry in index["videos"]:
        name = entry["name"]
        folder = prepared / name
        frames = np.load(folder / "frames.npy", mmap_mode="r")
        np.savez_compressed(packed / f"{name}.npz",
                            delta=delta_code(np.load(folder / "landmarks.npy")))
        shutil.copy(folder / "meta.json", packed / f"{name}.json")
        _encode(frames, packed / f"{name}.mp4", crf)
        total += len(frames)
    (packed / "index.json").write_text(json.dumps(index, indent=1))
    return total


def unpack(packed: Path, prepared: Path, workers: int = 8) -> int:
    """Unpack a pack() folder into a models.prepare folder; returns the number of frames."""
    index = _index(packed)
    prepared.mkdir(parents=True, exist_ok=True)
    names = [e["name"] for e in index["videos"]]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        counts = list(pool.map(_unpack_video, [packed] * len(names), [prepared] * len(names),
                               names))
    (prepared / "index.json").write_text(json.dumps(index, indent=1))
    return sum(counts)


def delta_code(landmarks: np.ndarray) -> np.ndarray:
    """(N, 478, 3) float pixels → int16 differences of sixteenths along N (the first row is
    the first frame itself)."""
    steps = np.round(np.asarray(landmarks, np.float64) * STEPS_PER_PIXEL).astype(np.int64)
    delta = np.diff(steps, axis=0, prepend=0)
    if np.abs(delta).max(initial=0) > np.iinfo(np.int16).max:
        raise PackError("landmarks too far apart for int16 sixteenths of a pixel")
    return delta.astype(np.int16)


def delta_decode(delta: np.ndarray) -> np.ndarray:
    return (np.cumsum(delta.astype(np.int64), axis=0) / STEPS_PER_PIXEL).astype(np.float32)


def _index(folder: Path) -> dict:
    path = folder / "index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PackError(f"{path}: not an index of prepared videos ({error})") from error
    videos = index.get("videos") if isinstance(index, dict) else None
    if not videos or not all(isinstance(e, dict) and "name" in e for e in videos):
        raise PackError(f"{path}: not an index of prepared videos (no named videos)")
    return index


def _encode(frames: np.ndarray, path: Path, crf: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(crf), "preset": "slow"}
        for frame in frames:
            rgb = np.ascontiguousarray(frame[..., ::-1])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def _unpack_video(packed: Path, prepared: Path, name: str) -> int:
    import cv2

    try:
        landmarks = delta_decode(np.load(packed / f"{name}.npz")["delta"])
    except (OSError, ValueError, KeyError) as error:
        raise PackError(f"{packed / name}.npz: unreadable landmarks ({error})") from error
    capture = cv2.VideoCapture(str(packed / f"{name}.mp4"))
    folder = prepared / name
    folder.mkdir(parents=True, exist_ok=True)
    crops = None
    count = 0
    while count <= len(landmarks):  # one frame more than the rows is already a mismatch
        ok, frame = capture.read()
        if not ok:
            break
        if count < len(landmarks):
            if crops is None:
                crops = np.lib.format.open_memmap(folder / "frames.npy", mode="w+",
                                                  dtype=np.uint8,
                                                  shape=(len(landmarks), *frame.shape))
            crops[count] = frame
        count += 1
    capture.release()
    if crops is None or count != len(landmarks):
        raise PackError(f"{packed / name}.mp4: {count} frames decoded for {len(landmarks)} "
                        f"landmark rows")
    crops.flush()
    np.save(folder / "landmarks.npy", landmarks)
    shutil.copy(packed / f"{name}.json", folder / "meta.json")
    return count


def main(argv: list[str] | None = None) -> int:
    from streamer.output_file import folder_argument

    parser = argparse.ArgumentParser(prog="python -m models.pack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a models.prepare folder (or, with --unpack, "
                                                  "a packed one)")
    parser.add_argument("dest", type=folder_argument)
    parser.add_argument("--unpack", action="store_true")
    parser.add_argument("--crf", type=int, default=22, choices=range(0, 52), metavar="0..51",
                        help="x264 quality: lower is larger")
    parser.add_argument("--workers", type=int, default=8, help="unpacking processes")
    args = parser.parse_args(argv)
    try:
        if args.unpack:
            count = unpack(args.source, args.dest, args.workers)
        else:
            count = pack(args.source, args.dest, args.crf)
    except PackError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"{'unpacked' if args.unpack else 'packed'} {count} frames → {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
