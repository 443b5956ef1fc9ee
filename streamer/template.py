"""The built-in motion template: a few seconds of real talking, blinking and nodding, stored
as a landmark track (no video frames), so `headcast animate` runs with no driving video."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from streamer.tracker import FaceTracker, TrackerConfig
from streamer.video_io import read_video_frames, video_fps

TEMPLATE_FILE = "motion_template.npz"


@dataclass(frozen=True)
class MotionTemplate:
    landmarks: np.ndarray  # (T, 478, 3) float32 pixels of the source clip
    fps: float  # frame rate of the track
    source: str  # which clip and frames it was tracked from


def load_template(path: Path | None = None) -> MotionTemplate:
    path = path or Path(str(resources.files("streamer") / "assets" / TEMPLATE_FILE))
    with np.load(path, allow_pickle=False) as data:
        return MotionTemplate(
            data["landmarks"].astype(np.float32), float(data["fps"]), str(data["source"])
        )


def build_template(video: Path, start: int, frames: int, out: Path) -> MotionTemplate:
    """Track frames [start, start + frames) of a clip and save them as a template."""
    track = []
    with FaceTracker(TrackerConfig(), video=True) as tracker:
        for i, image in enumerate(read_video_frames(video, start + frames)):
            lm = tracker.detect(image)
            if i >= start:
                if lm is None:
                    raise ValueError(f"{video}: no face in frame {i}; pick another segment")
                track.append(lm)
    template = MotionTemplate(
        np.stack(track), video_fps(video), f"{video.name} frames {start}-{start + len(track) - 1}"
    )
    np.savez_compressed(
        out,
        landmarks=template.landmarks.astype(np.float16),
        fps=template.fps,
        source=template.source,
    )
    return template


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m streamer.template", description="Build the motion template from a clip."
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument(
        "-o", "--out", type=Path, default=Path(__file__).parent / "assets" / TEMPLATE_FILE
    )
    args = parser.parse_args()
    t = build_template(args.video, args.start, args.frames, args.out)
    print(f"{args.out}: {len(t.landmarks)} frames at {t.fps:g} fps from {t.source}")
