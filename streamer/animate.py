"""The per-frame loop: driving frame → tracker → smoothing → motion transfer → renderer →
paste-back. When the face is lost the avatar eases to neutral and blinks now and then;
when it returns, motion picks up smoothly."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from streamer import landmarks as L
from streamer.motion import MotionConfig, MotionState, MotionTransfer
from streamer.neutral import rest_distances
from streamer.paste import Detail, PasteBack
from streamer.portrait import Portrait
from streamer.refine import RefineConfig
from streamer.renderer import Renderer, RendererConfig, create_renderer, render_stages
from streamer.smoothing import OneEuroFilter, SmoothingConfig
from streamer.tracker import FaceTracker, TrackerConfig
from streamer.turn_limits import TurnLimits, find_turn_limits

BLINK_SECONDS = 0.24  # duration of an idle blink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnimateOptions:
    motion: MotionConfig = field(default_factory=MotionConfig)  # how motion is transferred
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)  # live landmark filter
    # animate's filter over the whole track, run forwards and backwards (no lag, so it can
    # hold a still face steadier than the live one; with both, self-reenactment face PSNR over
    # static went +2.11 → +2.24 dB, benchmarks.quality)
    offline_smoothing: SmoothingConfig = field(
        default_factory=lambda: SmoothingConfig(min_cutoff=1.5, beta=30.0))
    # animate renders the track once, tracks its own output and corrects the targets
    # (streamer.refine); live cannot look at a frame twice
    refine: RefineConfig = field(default_factory=RefineConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)  # face mesh settings
    renderer: RendererConfig = field(default_factory=RendererConfig)  # which generator
    fps: float = 30.0  # frame rate of the driving stream (sets filter and easing clocks)
    ease_seconds: float = 0.35  # time constant of the ease to neutral when the face is lost
    regain_seconds: float = 0.2  # blend time back onto the face when it returns
    idle_blink_seconds: float = 3.5  # mean interval of idle blinks while no face is seen
    # The face's size against its resting size beyond which the avatar rests, as where no
    # face is seen: a person who stepped far back from the camera (a face found small by the
    # tracker's look closer) shrank the portrait into its own background, swirled round it.
    # The shared driving clips keep within 0.63–1.07.
    head_scale_range: tuple[float, float] = (0.5, 2.0)
    full_frame: bool = True  # paste the crop back into the full portrait (else: the crop)
    # where the crop shows the portrait's texture, take it from the full-resolution portrait:
    # "auto" when the portrait's face is larger than the crop (streamer.paste), "full"
    # always, "crop" never
    detail: Detail = "auto"
    # Neutral reference: "first" frame with a face (offline clips), or the first "steady"
    # moment, when the face holds still for steady_frames frames (live cameras).
    calibration: Literal["first", "steady"] = "first"
    # animate, which has the whole clip: its neutral is the first face "rest"ing (mouth no
    # wider than the portrait's, eyes open: streamer.neutral), or the "first" face as it is
    neutral: Literal["rest", "first"] = "rest"
    steady_frames: int = 8  # frames the face must hold still to be taken as neutral
    steady_motion: float = 0.02  # IOD per frame: most median (head) or lip motion when still
    steady_timeout: int = 60  # frames at fps (2 s at 30) after which the latest are taken anyway
    # "stream": frames are 1/fps apart (files, animate); "wall": the time between frames is
    # measured (live: frames skipped under load count their time, so filter, easing and the
    # steady calibration keep real time; a frame-counting calibration rested the avatar for
    # 60 processed frames on a loaded 2-core machine, where its 8 steady frames, 3 camera
    # frames apart, were seldom still "per frame")
    clock: Literal["stream", "wall"] = "stream"


@dataclass(frozen=True)
class Prepared:
    """One frame between Animator.prepare and finish: the renderer's first half."""

    begun: object
    render_ms: float  # time the first half took


@dataclass
class Avatar:
    """A portrait made ready to animate by Animator.make_avatar, for one Animator.set_portrait
    on that animator (a set avatar's renderer is closed when the next one is set)."""

    portrait: Portrait
    renderer: Renderer
    paste: PasteBack | None  # None: the animator sends the crop
    transfer: MotionTransfer  # with the portrait's turn limits
    maker: Animator  # the animator it was made for (its options), and the only one it fits
    taken: bool = field(default=False, init=False)  # set on its animator already


class Animator:
    """Implements streamer.frames.StagedProcessor for one portrait (switchable).

    process(image) = finish(prepare(image)): prepare tracks, transfers the motion and runs the
    renderer's first half (the warp); finish runs its second half (the neural generator) and
    pastes the crop back. The live pipeline runs the two on separate threads, so one frame is
    tracked while the previous one is generated; prepare and finish are each called from one
    thread, and set_portrait only while no frame is between them (make_avatar from any)."""

    def __init__(self, portrait: Portrait, options: AnimateOptions = AnimateOptions(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        """clock: seconds, read once per frame when options.clock is "wall"."""
        self.options = options
        self._clock = clock
        self._last_time: float | None = None
        self._tracker = FaceTracker(options.tracker, video=True)
        self._filter = OneEuroFilter(options.smoothing)
        self._rng = np.random.default_rng(0)
        self._renderer: Renderer | None = None
        self._state = MotionState.neutral()
        self._neutral: np.ndarray | None = None
        self._steady: deque[tuple[np.ndarray, float]] = deque(maxlen=options.steady_frames)
        # (mouth gap, eye gap, face) of the faces seen while waiting for a steady one
        self._seen: deque[tuple[float, float, np.ndarray]] = deque(
            maxlen=options.steady_frames + options.steady_timeout)
        self._waited = 0.0  # seconds spent waiting for a steady face
        self._lost_time = 0.0  # seconds without a face
        self._regain = 1.0
        self._switches = 0  # the tracker's count of faces taken up in place of another
        self._face_in_view = False  # the last frame had a face
        self._out_of_range: float | None = None  # the face's size against its rest, if outside
        self._next_blink = self._blink_interval()
        self.timings: dict[str, float] = {}  # ms spent per stage on the last frame
        self.set_portrait(portrait)

    # -- control -------------------------------------------------------------------------
    def make_avatar(self, portrait: Portrait) -> Avatar:
        """Everything `portrait` needs before its first frame: its renderer, paste-back and
        motion transfer, with how far its head may turn (streamer.turn_limits: 50 runs of the
        warp, most of the 0.5–0.8 s this takes on a 2-core CPU). Reads only the options, so
        it may run on any thread while this animator goes on with frames; set_portrait then
        swaps the result in between two of them."""
        options = self.options
        renderer = create_renderer(portrait, options.renderer)
        paste = PasteBack(portrait, options.detail) if options.full_frame else None
        transfer = MotionTransfer(portrait.crop_landmarks, options.motion)
        scale = getattr(renderer, "least_scale", None)  # renderers that warp a picture
        motion = options.motion
        if motion.hold_turns and motion.mode == "relative" and scale is not None:
            transfer.turn_limits = find_turn_limits(transfer.posed, scale)
        return Avatar(portrait, renderer, paste, transfer, self)

    def set_portrait(self, portrait: Portrait | Avatar) -> None:
        """Switch avatar: to a portrait (made ready here, which stalls this thread for most of
        a second), or to an Avatar this animator's make_avatar made beforehand (at once). The
        driver's neutral reference is kept."""
        avatar = portrait if isinstance(portrait, Avatar) else self.make_avatar(portrait)
        if avatar.maker is not self or avatar.taken:
            raise ValueError("an Avatar is set once, on the animator whose make_avatar made it")
        avatar.taken = True
        old = self._renderer
        self.portrait = avatar.portrait
        self._renderer = avatar.renderer
        self._paste = avatar.paste
        self._begin, self._finish = render_stages(
            self._renderer, textured=self._paste is not None and self._paste.full_detail)
        self._transfer = avatar.transfer
        self._transfer.config = self.options.motion  # head pose may have been switched since
        if self._neutral is not None:
            self._transfer.calibrate(self._neutral)
        if old is not None:
            old.close()

    def set_pose_transfer(self, enabled: bool) -> None:
        self.options = replace(self.options, motion=replace(self.options.motion, head_pose=enabled))
        self._transfer.config = self.options.motion

    def status(self) -> str | None:
        """What the avatar waits for, for the person in front of the camera (the preview
        window shows it); None while it follows the face."""
        if self._out_of_range is not None:
            return (f"your face is {self._out_of_range:.1f}× its resting size: come back to "
                    "where you were, or take your resting face again there (r)")
        if not self._face_in_view:
            return "no face in view"
        if self._neutral is None:
            return "hold still: taking your resting face"
        return None

    @property
    def face_centre(self) -> tuple[float, float]:
        """Where the portrait's head is in this animator's frames (the middle of its crop box,
        which holds the face with room for hair): the point a cut to another shape keeps in
        view (animate --size, a virtual camera's --fit crop)."""
        box = self.portrait.box
        if not self.options.full_frame:
            return box.size / 2, box.size / 2
        return box.x0 + box.side / 2, box.y0 + box.side / 2

    @property
    def turn_limits(self) -> TurnLimits | None:
        """How far this portrait's head turns each way (None: as the driver turns)."""
        return self._transfer.turn_limits

    @property
    def calibrated(self) -> bool:
        """Whether the driver's neutral reference is taken (until then the avatar rests)."""
        return self._neutral is not None

    def recalibrate(self) -> None:
        """Take the neutral reference again (next face, or next steady face)."""
        self._neutral = None
        self._steady.clear()
        self._seen.clear()
        self._waited = 0.0
        self._filter.reset()

    def set_neutral(self, driver: np.ndarray) -> None:
        """Take driver ((478, 3) pixels) as the neutral reference now, in place of the first
        face or the first steady moment: a resting face chosen from a whole clip
        (streamer.neutral)."""
        self._steady.clear()
        self._seen.clear()
        self._neutral = driver
        self._transfer.calibrate(driver)

    def _calibrate(self, driver: np.ndarray, dt: float) -> bool:
        """Try to take the neutral reference from this frame (dt seconds after the last);
        True once there is one."""
        opts = self.options
        if opts.calibration == "steady":
            self._steady.append((driver, dt))
            self._seen.append((L.mouth_gap(driver), L.eye_gap(driver), driver))
            if len(self._steady) < self._steady.maxlen:  # type: ignore[operator]
                return False
            self._waited += dt
            frames_seen = np.stack([d for d, _ in self._steady])  # (k, 478, 3)
            track = frames_seen[:, :, :2]
            step = np.linalg.norm(np.diff(track, axis=0), axis=2) / L.iod(driver)  # (k, 478)
            motion = np.maximum(np.median(step, axis=1), step[:, L.LIPS_INNER].mean(axis=1))
            spans = np.array([t for _, t in self._steady][1:]) * opts.fps  # frames per step
            still = (motion <= opts.steady_motion * np.maximum(spans, 1.0)).all()
            timed_out = self._waited * opts.fps >= opts.steady_timeout - 1e-6
            resting = frames_seen.mean(axis=0).astype(np.float32)
            mouth, eyes, faces = zip(*self._seen, strict=True)
            # at rest against every face seen while waiting (streamer.neutral): a pause
            # mid-word is still, but its mouth stands open
            past = rest_distances(np.array([*mouth, L.mouth_gap(resting)]),
                                  np.array([*eyes, L.eye_gap(resting)]),
                                  L.mouth_gap(self.portrait.crop_landmarks))
            if still and past[-1] <= 1.0:
                driver = resting
            elif timed_out:  # the latest face at rest seen, or the nearest to it
                at_rest = np.flatnonzero(past[:-1] <= 1.0)
                driver = faces[int(at_rest[-1]) if at_rest.size else int(np.argmin(past[:-1]))]
            else:
                return False
            log.info("resting face taken: the avatar follows the face now")
        self._neutral = driver
        self._transfer.calibrate(driver)
        return True

    # -- per frame -----------------------------------------------------------------------
    def process(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR driving frame → avatar frame (portrait size, or the crop)."""
        return self.finish(self.prepare(image))

    def prepare(self, image: np.ndarray) -> Prepared:
        """First half of process(): track, transfer, and begin rendering."""
        t0 = time.perf_counter()
        landmarks = self._tracker.detect(image)
        if self._tracker.switches != self._switches:  # another person: their own neutral
            self._switches = self._tracker.switches
            log.info("the face followed left and another is in view: following it, and "
                     "taking its neutral once it holds still")
            self.recalibrate()
        self.timings["track"] = (time.perf_counter() - t0) * 1000.0
        return self._prepare_landmarks(landmarks)

    def finish(self, prepared: Prepared) -> np.ndarray:
        """Second half of process(): finish rendering and paste back."""
        t0 = time.perf_counter()
        rendered = self._finish(prepared.begun)
        t1 = time.perf_counter()
        out = self._paste.paste(rendered) if self._paste is not None else rendered.crop
        t2 = time.perf_counter()
        self.timings.update(render=prepared.render_ms + (t1 - t0) * 1e3, paste=(t2 - t1) * 1e3)
        return out

    def render_landmarks(self, driver: np.ndarray | None) -> np.ndarray:
        """Driver landmarks ((478, 3) pixels, or None when no face) → avatar frame."""
        return self.finish(self._prepare_landmarks(driver))

    def render_target(self, target: np.ndarray) -> np.ndarray:
        """The portrait's target landmarks ((478, 3) crop pixels, as target_landmarks gives
        them) → avatar frame; the motion state is not touched."""
        assert self._renderer is not None, "animator is closed"
        t0 = time.perf_counter()
        begun = self._begin(target)
        return self.finish(Prepared(begun, (time.perf_counter() - t0) * 1e3))

    def _prepare_landmarks(self, driver: np.ndarray | None) -> Prepared:
        assert self._renderer is not None, "animator is closed"
        t0 = time.perf_counter()
        target = self.target_landmarks(driver)
        t1 = time.perf_counter()
        begun = self._begin(target)
        t2 = time.perf_counter()
        self.timings["motion"] = (t1 - t0) * 1e3
        return Prepared(begun, (t2 - t1) * 1e3)

    def target_landmarks(self, driver: np.ndarray | None) -> np.ndarray:
        """The portrait's target landmarks (crop pixels) for this frame."""
        dt = self._frame_dt()
        self._face_in_view = driver is not None
        self._out_of_range = None
        if driver is None:
            return self._rest(dt)
        driver = self._filter(driver, dt, unit=L.iod(driver))
        if self._neutral is None and not self._calibrate(driver, dt):
            return self._transfer.compose(self._idle_state(dt))  # rest until the face is steady
        if self.options.motion.mode == "absolute":
            return self.portrait.box.to_crop(driver)
        measured = self._transfer.measure(driver)
        low, high = self.options.head_scale_range
        self._out_of_range = None if low <= measured.scale <= high else measured.scale
        if self._out_of_range is not None:  # far nearer or farther than at rest
            return self._rest(dt)
        if self._lost_time > 0.0:  # face came back: blend from the eased state
            self._regain = 0.0
        self._lost_time = 0.0
        if self._regain < 1.0:
            self._regain = min(1.0, self._regain + dt / self.options.regain_seconds)
            measured = self._state.blend(measured, self._regain)
        self._state = measured
        return self._transfer.compose(measured)

    def _frame_dt(self) -> float:
        """Seconds since the last frame: 1/fps on a stream clock; on a wall clock measured,
        at least 1/fps (a file read faster than it plays keeps its own time) and at most 1 s."""
        step = 1.0 / self.options.fps
        if self.options.clock != "wall":
            return step
        now = self._clock()
        last, self._last_time = self._last_time, now
        return step if last is None else float(np.clip(now - last, step, max(step, 1.0)))

    def _rest(self, dt: float) -> np.ndarray:
        """The target while no face is followed: easing to neutral (_idle_state)."""
        self._state = self._idle_state(dt)
        return self._transfer.compose(self._state)

    def _idle_state(self, dt: float) -> MotionState:
        """No face: ease towards neutral, with an idle blink now and then."""
        self._lost_time += dt
        w = 1.0 - np.exp(-dt / self.options.ease_seconds)
        self._state = self._state.blend(MotionState.neutral(), w)
        t = self._lost_time
        phase = (t - self._next_blink) / BLINK_SECONDS
        if phase >= 1.0:
            self._next_blink = t + self._blink_interval()
        lid = abs(np.cos(np.pi * phase)) if 0.0 < phase < 1.0 else 1.0
        return self._state.with_lids(np.minimum(self._state.lid_ratio, lid))

    def _blink_interval(self) -> float:
        mean = self.options.idle_blink_seconds
        return float(self._rng.uniform(0.6 * mean, 1.4 * mean))

    def close(self) -> None:
        self._tracker.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
