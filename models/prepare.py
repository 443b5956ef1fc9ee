"""python -m models.prepare VIDEO_DIR OUT: talking-head videos → cached training crops.

For each video: track every frame with the runtime's tracker (MediaPipe, video mode), fix
one crop box per video (the median of the runtime's portrait crop rule over its frames, so
the head moves inside a still background as in a live session), cut the crops and save

  OUT/<video stem>/frames.npy     (N, S, S, 3) uint8 BGR crops (memory-mapped in training)
  OUT/<video stem>/landmarks.npy  (N, 478, 3) float32 crop pixels
  OUT/<video stem>/meta.json      source, identity, fps, frame indices, crop box
  OUT/index.json                  the prepared videos

Videos are decoded in parallel worker processes. `--range 0:0.7` keeps the first 70% of each
clip (the rest is evaluation material); `--stride 2` every second frame. Identities come
from VIDEO_DIR/manifest.tsv when there is one (several clips can show one person), else
from the file name.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


@dataclass(frozen=True)
class PrepareOptions:
    size: int = 512  # crop side (the runtime's default crop; the network sees its face window)
    start: float = 0.0  # first frame kept, as a fraction of the clip
    end: float = 1.0  # end of the kept part, as a fraction of the clip
    stride: int = 1  # keep every stride-th frame
    min_frames: int = 16  # videos with fewer tracked frames are skipped


def identities(video_dir: Path) -> dict[str, str]:
    """file name → identity, from manifest.tsv when present."""
    manifest = video_dir / "manifest.tsv"
    if not manifest.is_file():
        return {}
    with manifest.open() as f:
        return {row["file"]: row["identity"] for row in csv.DictReader(f, delimiter="\t")}


def prepare_video(path: Path, out: Path, identity: str, options: PrepareOptions) -> dict:
    """Track, crop and save one video; returns its index entry, or {"name", "skipped": why}
    (a clip that cannot be read, or too few tracked frames: it had stopped every other clip's
    work, or been left out without a word)."""
    from streamer.errors import VideoReadError
    from streamer.portrait import CropBox, EnrollConfig, crop_box, cut_crop
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_video_frames, video_info

    try:
        fps, _ = video_info(path)
        count = sum(1 for _ in read_video_frames(path))  # headers can lie about the count
    except VideoReadError as exc:
        return {"name": path.stem, "skipped": str(exc)}
    first, last = int(options.start * count), int(round(options.end * count))
    keep, tracked = [], []
    with FaceTracker(video=True) as tracker:
        for i, frame in enumerate(read_video_frames(path, last)):
            if i < first:
                continue
            lm = tracker.detect(frame)  # every frame: video mode tracks between them
            if lm is not None and (i - first) % options.stride == 0:
                keep.append(i)
                tracked.append(lm)
    if len(keep) < options.min_frames:
        return {"name": path.stem, "skipped": f"{len(keep)} frames with a face (every "
                f"--stride {options.stride} of {last - first}), {options.min_frames} needed"}
    config = EnrollConfig(crop_size=options.size)
    boxes = np.array([[b.x0, b.y0, b.side] for b in (crop_box(lm, config) for lm in tracked)])
    x0, y0, side = np.median(boxes, axis=0)
    box = CropBox(float(x0), float(y0), float(side), options.size)
    folder = out / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    crops = np.lib.format.open_memmap(
        folder / "frames.npy", mode="w+", dtype=np.uint8, shape=(len(keep), options.size,
                                                                 options.size, 3))
    slot = {i: j for j, i in enumerate(keep)}
    for i, frame in enumerate(read_video_frames(path, last)):  # second pass: memory stays flat
        if i in slot:
            crops[slot[i]] = cut_crop(frame, box)
    crops.flush()
    np.save(folder / "landmarks.npy", np.stack([box.to_crop(lm) for lm in tracked]))
    meta = {
        "source": str(path),
        "identity": identity,
        "fps": fps,
        "frames": keep,
        "frames_in_clip": count,
        "box": [box.x0, box.y0, box.side, box.size],
        "options": asdict(options),
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return {"name": path.stem, "identity": identity, "frames": len(keep)}


def prepare(
    video_dir: Path, out: Path, options: PrepareOptions, workers: int = 2,
    only: list[str] | None = None,
) -> list[dict]:
    """Prepare every video of video_dir (names starting with one of `only`, when given)."""
    names = identities(video_dir)
    paths = sorted(p for p in video_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    out.mkdir(parents=True, exist_ok=True)
    # spawn, not fork: a parent that already runs MediaPipe or onnxruntime threads must not fork
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
        jobs = [pool.submit(prepare_video, p, out, names.get(p.name, p.stem), options)
                for p in paths]
        results = [j.result() for j in jobs]
    for skipped in (r for r in results if "skipped" in r):
        print(f"{skipped['name']}: skipped: {skipped['skipped']}", file=sys.stderr)
    entries = [r for r in results if "skipped" not in r]
    index_path = out / "index.json"
    previous = json.loads(index_path.read_text())["videos"] if index_path.is_file() else []
    if not previous and not entries:  # an index of nothing would pass for a prepared folder
        return entries
    merged = {e["name"]: e for e in previous + entries}
    index_path.write_text(json.dumps({"videos": sorted(merged.values(), key=lambda e: e["name"])},
                                     indent=1))
    return entries


def _range(text: str) -> tuple[float, float]:
    a, b = (float(v) for v in text.split(":"))
    if not 0.0 <= a < b <= 1.0:
        raise argparse.ArgumentTypeError("range must be START:END with 0 <= START < END <= 1")
    return a, b


def main(argv: list[str] | None = None) -> int:
    from streamer.cli import parse_count  # whole, 1 or more (--stride 0 divided by zero)
    from streamer.output_file import folder_argument

    parser = argparse.ArgumentParser(prog="python -m models.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video_dir", type=Path)
    parser.add_argument("out", type=folder_argument)
    parser.add_argument("--size", type=parse_count, default=512)
    parser.add_argument("--range", type=_range, default=(0.0, 1.0), help="START:END fractions")
    parser.add_argument("--stride", type=parse_count, default=1)
    parser.add_argument("--workers", type=parse_count, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="file-name prefixes to keep")
    args = parser.parse_args(argv)
    if not args.video_dir.is_dir():
        parser.error(f"{args.video_dir}: no such folder of clips")
    options = PrepareOptions(size=args.size, start=args.range[0], end=args.range[1],
                             stride=args.stride)
    entries = prepare(args.video_dir, args.out, options, args.workers, args.only)
    total = sum(e["frames"] for e in entries)
    print(f"prepared {len(entries)} videos, {total} frames → {args.out}")
    if not entries:  # nothing to train on: said above why, or no clip matched
        print(f"error: no clip of {args.video_dir} was prepared (clips: "
              f"{', '.join(VIDEO_SUFFIXES)}; --only {args.only})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
