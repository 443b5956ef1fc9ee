"""Offline jobs behind `headcast enroll` and `headcast animate`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from streamer.animate import AnimateOptions, Animator
from streamer.errors import ModelFileError, NoFaceError, VideoReadError
from streamer.face_check import faces_seen_again
from streamer.frames import LIVE_MAX_SIDE
from streamer.neural import neural_available, with_embedding
from streamer.neutral import rest_frame
from streamer.output_file import VIDEO_SUFFIXES, check_output, written_whole
from streamer.paste import PasteBack
from streamer.portrait import EnrollConfig, Portrait, enroll_images, load_portrait, save_portrait
from streamer.refine import refine_targets
from streamer.renderer import RendererConfig, create_renderer, render_textured
from streamer.sinks import crop_to_fill, shrink_to
from streamer.smoothing import smooth_track
from streamer.template import load_template
from streamer.tracker import FaceTracker, TrackerConfig, box_area, face_box, square_around
from streamer.video_io import (
    VideoWriter,
    is_still_picture,
    read_image,
    read_timed_frames,
    read_video_frames,
    video_info,
)

log = logging.getLogger(__name__)

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
    # hold G's mouth to the meta-learned one while fine-tuning (models.finetune, "Anchors");
    # off, a painting's warped mouth shows through (README, "Few-shot model")
    finetune_anchors: bool = True


def video_shots(path: Path, k: int, face: int | None = None
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """K frames spread evenly over the frames of a clip that show a face (the first such frame
    included), with their landmarks; face: the N-th face from the left to follow
    (TrackerConfig.first_face), None: the largest. The first pass tracks the whole clip in
    video mode, as a driving clip is tracked, so the shots' landmarks match the driver's; the
    second keeps only the K frames in memory (headers can lie about the frame count)."""
    tracks = clip_track(path, None, TrackerConfig(first_face=face))
    faces = [i for i, lm in enumerate(tracks) if lm is not None]
    if not faces:
        raise _faceless_clip(path, len(tracks), face)
    spread = np.linspace(0, len(faces) - 1, min(k, len(faces))).round().astype(int)
    picks = {faces[i] for i in spread}
    frames = [frame for i, frame in enumerate(read_video_frames(path)) if i in picks]
    return frames, [tracks[i] for i in sorted(picks)]


def _faceless_clip(path: Path, frames: int, face: int | None) -> NoFaceError:
    which = f"face {face} from the left" if face else "human face"
    return NoFaceError(f"{path}: no {which} found in any of its {frames} frames")


def enroll_shots(images: list[np.ndarray], config: EnrollConfig = EnrollConfig(),
                 skip_faceless: bool = False, render_first: bool = False,
                 landmarks: list[np.ndarray | None] | None = None,
                 names: Sequence[str] | None = None,
                 model: RendererConfig = RendererConfig()) -> Portrait:
    """Enroll K images of one face, with the neural model's embedding when it is installed
    (landmarks, names: as for streamer.portrait.enroll_images; model: whose embedder, its
    model_dir and model)."""
    portrait = enroll_images(images, config, skip_faceless=skip_faceless,
                             render_first=render_first, landmarks=landmarks, names=names)
    if neural_available(model):
        portrait = with_embedding(portrait, images, model)
    return portrait


def run_enroll(job: EnrollJob, progress: bool = True) -> Portrait:
    # the suffix is how `animate --portrait` tells a portrait file from an image
    check_output(job.output, (PORTRAIT_SUFFIX,))
    landmarks = None
    names = None
    if job.from_video is not None:
        images, landmarks = video_shots(job.from_video, job.shots or 8, job.config.face)
    else:
        images = [read_image(p) for p in job.images[: job.shots]]
        names = [str(p) for p in job.images[: job.shots]]
    portrait = enroll_shots(images, job.config, landmarks=landmarks, names=names)
    if job.finetune_steps > 0:
        portrait = finetune_portrait(portrait, images, job.finetune_steps, progress,
                                     job.finetune_anchors)
    with written_whole(job.output) as part:
        save_portrait(portrait, part)
    return portrait


def finetune_portrait(portrait: Portrait, images: list[np.ndarray], steps: int,
                      progress: bool, anchors: bool = True,
                      model: RendererConfig = RendererConfig()) -> Portrait:
    """The paper's fine-tuning stage on the portrait's shots (images as for enrollment);
    anchors: as EnrollJob.finetune_anchors; model: whose weights, as for enroll_shots."""
    if not neural_available(model):
        raise ModelFileError("--finetune needs the neural model, which is not installed")
    try:
        from models.finetune import FinetuneOptions
        from models.personalize import personalize
    except ImportError as exc:
        raise ModelFileError(
            f"--finetune needs torch: pip install -e \".[train]\" ({exc})"
        ) from exc
    from streamer.neural import shot_crops

    options = FinetuneOptions(steps=steps)
    if not anchors:
        options = replace(options, w_anchor=0.0)
    return personalize(portrait, shot_crops(portrait, images), options, progress, model)


def open_portrait(path: Path | None, config: EnrollConfig = EnrollConfig(),
                  live: bool = False) -> Portrait:
    """A .headcast file, an image (enrolled on the fly), or the default face when None.
    live: an image is taken at most LIVE_MAX_SIDE on its longer side (for_live)."""
    if path is None:
        return enroll_shots([default_portrait_image()], config)
    if path.suffix == PORTRAIT_SUFFIX:
        portrait = load_portrait(path)
        if live and max(portrait.image.shape[:2]) > LIVE_MAX_SIDE:
            h, w = portrait.image.shape[:2]
            log.warning("%s is %dx%d: every frame is drawn that large, far slower than live; "
                        "for a live rate enroll a picture of at most %d pixels a side", path, w,
                        h, LIVE_MAX_SIDE)
        return portrait
    image = read_image(path)
    return enroll_shots([for_live(image) if live else image], config, names=[str(path)])


def for_live(image: np.ndarray) -> np.ndarray:
    """The picture shrunk to LIVE_MAX_SIDE on its longer side (as it is when not larger)."""
    shrunk = shrink_to(image, LIVE_MAX_SIDE)
    if shrunk is not image:
        log.info("portrait picture %dx%d taken at %dx%d for live use", image.shape[1],
                 image.shape[0], shrunk.shape[1], shrunk.shape[0])
    return shrunk


@dataclass(frozen=True)
class AnimateJob:
    portrait: Portrait
    driving: Path | None  # None: the built-in motion template
    output: Path
    options: AnimateOptions = AnimateOptions()
    size: tuple[int, int] | None = None  # (width, height) of the output; None: the portrait's
    max_frames: int | None = None  # stop after this many frames


@dataclass(frozen=True)
class AnimateResult:
    frames: int  # written to the output
    faceless: int  # driving frames without the face: the avatar rested there
    announced: int | None = None  # frames the clip's header promised, where fewer were read


def run_animate(job: AnimateJob, progress: bool = True) -> AnimateResult:
    """Render the job to its output file.

    Offline the whole driving track is known, so it is tracked first and smoothed without
    lag (streamer.smoothing.smooth_track), the targets are refined against a first render
    (streamer.refine), then rendered."""
    from tqdm import tqdm

    check_output(job.output, VIDEO_SUFFIXES, [job.driving])
    template = load_template() if job.driving is None else None
    announced: int | None = None  # frames the driving clip's header says it has (to max_frames)
    switches: list[int] = []  # frames where another person is taken up
    times: list[float | None] = []  # when each driving frame shows, as its file says
    if template is not None:
        fps, track = template.fps, list(template.landmarks[: job.max_frames])
    else:
        assert job.driving is not None
        if is_still_picture(job.driving):  # it had made a video of one frame
            raise VideoReadError(
                f"{job.driving}: a still picture, not a video: a clip of a face talking "
                "drives the portrait (the picture to animate is --portrait)")
        fps, announced = video_info(job.driving)
        if job.max_frames is not None and announced is not None:
            announced = min(announced, job.max_frames)
        count = announced or job.max_frames  # for the progress bar
        track = clip_track(job.driving, job.max_frames, job.options.tracker, switches, times,
                           lambda it, what: tqdm(it, total=count, unit="frame",
                                                 disable=not progress, desc=what))
        if all(landmarks is None for landmarks in track):  # the output would be a still
            raise _faceless_clip(job.driving, len(track), job.options.tracker.first_face)
    animator, crop_targets = offline_animation(
        job.portrait, track, replace(job.options, fps=fps),
        lambda it: tqdm(it, total=len(track), unit="frame", disable=not progress, desc="refine"),
        switches=switches)
    # written beside the output and moved onto it at the end: a run stopped half way leaves
    # the file that was there as it was
    try:
        with written_whole(job.output) as part, \
                VideoWriter(part, fps, audio_from=job.driving, shown_as=job.output) as writer:
            timed = None not in times and len(times) == len(crop_targets)
            for i, target in enumerate(tqdm(crop_targets, unit="frame", disable=not progress,
                                            desc="animate")):
                frame = animator.render_target(target)
                if job.size is not None and frame.shape[1::-1] != job.size:
                    frame = crop_to_fill(frame, job.size, animator.face_centre)
                writer.write(frame, times[i] if timed else None)
        faceless = sum(landmarks is None for landmarks in track)
        # a clip cut short (a copy stopped half way) is read up to the cut, and said so
        short = announced is not None and len(track) < announced - 1
        return AnimateResult(writer.frames_written, faceless, announced if short else None)
    finally:
        animator.close()


def _noting_times(timed: Iterable[tuple[np.ndarray, float | None]],
                  times: list[float | None]) -> Iterator[np.ndarray]:
    """The frames of read_timed_frames, their times appended to `times` as they pass."""
    for image, time in timed:
        times.append(time)
        yield image


def clip_track(path: Path, max_frames: int | None = None,
               config: TrackerConfig = TrackerConfig(), switches: list[int] | None = None,
               times: list[float | None] | None = None,
               progress: Callable[[Iterable, str], Iterable] = lambda it, what: it,
               ) -> list[np.ndarray | None]:
    """driver_track of a clip's frames (times: gets each frame's time). Where it finds no
    face in any frame, the face may be too small against the frame for the video-mode face
    detector (a head 250 px tall in a 1080p frame): it is looked for in a few frames spread
    over the clip in image mode (which reads squares of the frame), and the clip is tracked
    again within a square around where it was found, the landmarks put back in place. (The
    live tracker's own look closer, TrackerConfig.look_closer_after, is not used here: it
    finds a small face only after that many frames without one.)"""
    noted: list[float | None] = [] if times is None else times
    frames = _noting_times(read_timed_frames(path, max_frames), noted)
    config = replace(config, look_closer_after=None)
    track = driver_track(progress(frames, "track"), config, switches)
    if any(landmarks is not None for landmarks in track):
        return track
    square = _face_square(path, len(track), config)
    if square is None:
        return track
    x, y, side = square
    if switches is not None:
        switches.clear()
    crops = (image[y:y + side, x:x + side] for image in read_video_frames(path, max_frames))
    track = driver_track(progress(crops, "track (around the small face)"), config, switches)
    for landmarks in track:
        if landmarks is not None:
            landmarks[:, :2] += (x, y)
    return track


def _face_square(path: Path, frames: int, config: TrackerConfig, looks: int = 8
                 ) -> tuple[int, int, int] | None:
    """(x, y, side) of a square of the clip's frames around the faces image mode finds in
    `looks` frames spread over its first `frames` (the largest of each that is found again
    mirrored and turned, streamer.face_check: not a dog's beside it; at least three face
    widths, and the faces' span with a face width around it); None where none is found."""
    picks = set(np.linspace(0, max(frames - 1, 0), looks).round().astype(int).tolist())
    boxes, shape = [], (0, 0)
    with FaceTracker(config, video=False) as tracker:
        for i, image in enumerate(read_video_frames(path, frames)):
            if i in picks and (faces := faces_seen_again(tracker, image)):
                boxes.append(face_box(max(faces, key=box_area)))
                shape = image.shape[:2]
    return square_around(boxes, shape) if boxes else None


def driver_track(frames: Iterable[np.ndarray], config: TrackerConfig = TrackerConfig(),
                 switches: list[int] | None = None) -> list[np.ndarray | None]:
    """(478, 3) landmarks (or None) of every driving frame, tracked in video mode. switches:
    gets the index of every frame where the tracker took up another face in place of the one
    it followed (another person: offline_animation takes that face's own neutral there)."""
    track: list[np.ndarray | None] = []
    with FaceTracker(config, video=True) as tracker:
        for frame in frames:
            before = tracker.switches
            track.append(tracker.detect(frame))
            if switches is not None and tracker.switches != before:
                switches.append(len(track) - 1)
    return track


def offline_track(track: list[np.ndarray | None], options: AnimateOptions
                  ) -> tuple[list[np.ndarray | None], AnimateOptions]:
    """What animate renders from a whole driver track: the track smoothed without lag, and
    the options to render it with (the Animator's live filter off: it would smooth twice)."""
    smoothed = smooth_track(track, options.fps, options.offline_smoothing)
    return smoothed, replace(options, smoothing=replace(options.smoothing, enabled=False))


def animation_targets(animator: Animator, track: list[np.ndarray | None],
                      progress: Callable[[Iterable], Iterable] = lambda it: it,
                      switches: Sequence[int] = ()) -> list[np.ndarray]:
    """The portrait's target landmarks (crop pixels) animate renders for a (smoothed) driver
    track: the motion transfer of every frame, then refined against a first render of them
    when options.refine is on. At each frame in `switches` (another person taken up:
    driver_track) the neutral is taken anew. Each person's neutral is their first face at
    rest (streamer.neutral.rest_frame; options.neutral "rest"), not one caught mid-word or
    mid-blink. The first render is looked at as it will be delivered (the crop pasted into
    the portrait; the tracker reads a face at the scale of the frame), by a renderer of its
    own, so the animator's starts fresh."""
    starts = sorted({0, *switches})
    targets = []
    for i, landmarks in enumerate(track):
        if i in starts:
            if i > 0:
                animator.recalibrate()
            end = next((s for s in starts if s > i), len(track))
            if animator.options.neutral == "rest" and (
                    rest := rest_frame(track[i:end], animator.portrait.crop_landmarks)) is not None:
                animator.set_neutral(track[i + rest])  # type: ignore[arg-type]
        targets.append(animator.target_landmarks(landmarks))
    options = animator.options
    if not options.refine.enabled:
        return targets
    portrait = animator.portrait
    renderer = create_renderer(portrait, options.renderer)
    if options.full_frame:
        paste = PasteBack(portrait, options.detail)
        render = lambda t: paste.paste(render_textured(renderer, t))  # noqa: E731
        to_crop = portrait.box.to_crop
    else:
        render, to_crop = renderer.render, (lambda points: points)
    try:
        return refine_targets(targets, render, portrait.crop_landmarks, options.refine,
                              options.tracker, progress, to_crop)
    finally:
        renderer.close()


def offline_animation(portrait: Portrait, track: list[np.ndarray | None], options: AnimateOptions,
                      progress: Callable[[Iterable], Iterable] = lambda it: it,
                      switches: Sequence[int] = ()) -> tuple[Animator, list[np.ndarray]]:
    """What animate renders from a whole driver track: an Animator (the caller closes it)
    and the crop targets to give its render_target, frame by frame, in order (the track
    smoothed without lag, then animation_targets; switches: as driver_track gives them)."""
    smoothed, render_options = offline_track(track, options)
    animator = Animator(portrait, render_options)
    try:
        return animator, animation_targets(animator, smoothed, progress, switches)
    except BaseException:
        animator.close()
        raise
