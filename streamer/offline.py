"""Offline jobs behind `headcast enroll` and `headcast animate`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.animate import AnimateOptions, Animator
from streamer.errors import ModelFileError
from streamer.neural import neural_available, with_embedding
from streamer.portrait import EnrollConfig, Portrait, enroll_images, load_portrait, save_portrait
from streamer.template import MotionTemplate, load_template
from streamer.video_io import VideoWriter, read_image, read_video_frames, video_info

PORTRAIT_SUFFIX = ".headcast"


def default_portrait_image() -> np.ndarray:
    """The astronaut photo shipped in scikit-image (Eileen Collins, public domain), BGR."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@dataclass(frozen=True)
class EnrollJob:
    images: list[Path]  # pictures of one face (may be empty with from_video)
    output: Path
    config: EnrollConfig = EnrollConfig()
    shots: int | None = None  # K: how many images (or video frames) to use; None: all / 8
    from_video: Path | None = None  # take the K shots from this clip, spread over it
    finetune_steps: int = 0  # > 0: fine-tune the neural model on the shots (needs torch)


def video_shots(path: Path, k: int) -> list[np.ndarray]:
    """K frames spread evenly over a clip (its first frame included). Two decoding passes, so
    only the K frames are held in memory (headers can lie about the frame count)."""
    count = sum(1 for _ in read_video_frames(path))
    picks = set(np.linspace(0, count - 1, min(k, count)).round().astype(int).tolist())
    return [frame for i, frame in enumerate(read_video_frames(path)) if i in picks]


def enroll_shots(images: list[np.ndarray], config: EnrollConfig = EnrollConfig(),
                 skip_faceless: bool = False, render_first: bool = False) -> Portrait:
    """Enroll K images of one face, with the neural model's embedding when it is installed."""
    portrait = enroll_images(images, config, skip_faceless=skip_faceless,
                             render_first=render_first)
    if neural_available():
        portrait = with_embedding(portrait, images)
    return portrait


def run_enroll(job: EnrollJob, progress: bool = True) -> Portrait:
    if job.from_video is not None:
        images = video_shots(job.from_video, job.shots or 8)
    else:
        images = [read_image(p) for p in job.images[: job.shots]]
    portrait = enroll_shots(images, job.config, skip_faceless=job.from_video is not None)
    if job.finetune_steps > 0:
        portrait = finetune_portrait(portrait, images, job.finetune_steps, progress)
    save_portrait(portrait, job.output)
    return portrait


def finetune_portrait(portrait: Portrait, images: list[np.ndarray], steps: int,
                      progress: bool) -> Portrait:
    """The paper's fine-tuning stage on the portrait's shots (images as for enrollment)."""
    if not neural_available():
        raise ModelFileError("--finetune needs the neural model, which is not installed")
    try:
        from models.finetune import FinetuneOptions
        from models.personalize import personalize
    except ImportError as exc:
        raise ModelFileError(
            f"--finetune needs torch: pip install -e \".[train]\" ({exc})"
        ) from exc
    from streamer.neural import shot_crops

    return personalize(portrait, shot_crops(portrait, images), FinetuneOptions(steps=steps),
                       progress)


def open_portrait(path: Path | None, config: EnrollConfig = EnrollConfig()) -> Portrait:
    """A .headcast file, an image (enrolled on the fly), or the default face when None."""
    if path is None:
        return enroll_shots([default_portrait_image()], config)
    if path.suffix == PORTRAIT_SUFFIX:
        return load_portrait(path)
    return enroll_shots([read_image(path)], config)


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
