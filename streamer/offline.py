"""Offline jobs behind `headcast enroll` and `headcast animate`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.animate import AnimateOptions, Animator
from streamer.portrait import EnrollConfig, Portrait, enroll_images, load_portrait, save_portrait
from streamer.template import MotionTemplate, load_template
from streamer.video_io import VideoWriter, read_image, read_video_frames, video_info

PORTRAIT_SUFFIX = ".headcast"


def default_portrait_image() -> np.ndarray:
    """The astronaut photo shipped in scikit-image (Eileen Collins, public domain), BGR."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def enroll_files(paths: list[Path], out: Path, config: EnrollConfig = EnrollConfig()) -> Portrait:
    portrait = enroll_images([read_image(p) for p in paths], config)
    save_portrait(portrait, out)
    return portrait


def open_portrait(path: Path | None, config: EnrollConfig = EnrollConfig()) -> Portrait:
    """A .headcast file, an image (enrolled on the fly), or the default face when None."""
    if path is None:
        return enroll_images([default_portrait_image()], config)
    if path.suffix == PORTRAIT_SUFFIX:
        return load_portrait(path)
    return enroll_images([read_image(path)], config)


@dataclass(frozen=True)
class AnimateJob:
    portrait: Portrait
    driving: Path | None  # None: the built-in motion template
    output: Path
    options: AnimateOptions = AnimateOptions()
    size: tuple[int, int] | None = None  # (width, height) of the output; None: the portrait's
    max_frames: int | None = None  # stop after this many frames


def run_animate(job: AnimateJob, progress: bool = True) -> int:
    """Render the job to its output file; returns the number of frames written."""
    from tqdm import tqdm

    template = load_template() if job.driving is None else None
    if template is not None:
        fps, count = template.fps, len(template.landmarks)
    else:
        assert job.driving is not None
        fps, count = video_info(job.driving)
    if job.max_frames is not None:
        count = min(count, job.max_frames) if count else job.max_frames
    options = AnimateOptions(**{**job.options.__dict__, "fps": fps})
    animator = Animator(job.portrait, options)
    try:
        with VideoWriter(job.output, fps, audio_from=job.driving) as writer:
            for frame in tqdm(
                _avatar_frames(animator, job, template),
                total=count,
                unit="frame",
                disable=not progress,
                desc="animate",
            ):
                if job.size is not None and frame.shape[1::-1] != job.size:
                    frame = _fit(frame, job.size)
                writer.write(frame)
            return writer.frames_written
    finally:
        animator.close()


def _avatar_frames(
    animator: Animator, job: AnimateJob, template: MotionTemplate | None
) -> Iterator[np.ndarray]:
    """Driving frames (or the template's landmark track) → avatar frames."""
    if template is not None:
        for landmarks in template.landmarks[: job.max_frames]:
            yield animator.render_landmarks(landmarks)
        return
    assert job.driving is not None
    for image in read_video_frames(job.driving, job.max_frames):
        yield animator.process(image)


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale to cover (width, height) and centre-crop: no bars, no distortion."""
    w, h = size
    scale = max(w / frame.shape[1], h / frame.shape[0])
    resized = cv2.resize(
        frame,
        (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
    )
    y0, x0 = (resized.shape[0] - h) // 2, (resized.shape[1] - w) // 2
    return resized[y0 : y0 + h, x0 : x0 + w]
