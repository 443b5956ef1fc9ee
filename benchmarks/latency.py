"""Live latency: capture → virtual camera, measured frame by frame for minutes.

A 30 fps driving clip plays as the camera (looping, paced at its own rate), the Animator
turns it into the avatar (512 crop), and the virtual-camera sink sends it to a fake
pyvirtualcam backend (no device needed). The table says how many frames made it, at what
rate, how long they took from capture to the sink, whether that grows over the run (first
vs last 30 s), and where the time goes per stage.

    python -m benchmarks.latency [--seconds 120] [--processor animator|fake]
        [--renderer auto|warp|neural] [--crop-size 256|512] [--full-frame]
        [--precision int8|fp32] [--threads N] [--no-overlap]
        [--switch-to PORTRAIT --switch-every S]

With --switch-to the avatar switches between the two portraits every S seconds, as the
preview's number keys do, and the table adds the longest gap between two frames reaching the
sink in the SWITCH_WINDOW_S after each switch, against the longest gap away from them.

With a staged processor (the Animator) the pipeline tracks frame n + 1 while it renders
frame n; --no-overlap runs both halves on one worker thread, as before.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.quality import at_least, default_data_dir
from streamer.frames import Frame, Sink
from streamer.paste import DETAILS
from streamer.pipeline import AvatarProcessor, Pipeline, PipelineConfig, PipelineStats
from streamer.sink_virtualcam import VirtualCamConfig, VirtualCamSink
from streamer.sources import VideoFileSource

BACKEND = "benchmark-null"
SWITCH_WINDOW_S = 2.0  # seconds after a switch whose frame gaps count as the switch's


class NullCamBackend:
    """A pyvirtualcam backend that accepts frames and forgets them (pyvirtualcam Backend)."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, **kw: object) -> None:
        self.frames = 0

    def send(self, frame: np.ndarray) -> None:
        self.frames += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "null"

    def native_fourcc(self) -> int | None:
        return None


class TimedSink:
    """Wraps a sink and keeps (capture_ts, send returned) of every frame it delivered."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.captured: list[float] = []
        self.done: list[float] = []

    def open(self, width: int, height: int, fps: float) -> None:
        self.inner.open(width, height, fps)

    def send(self, frame: Frame) -> None:
        self.inner.send(frame)
        self.captured.append(frame.capture_ts)
        self.done.append(time.monotonic())

    def close(self) -> None:
        self.inner.close()


class FakeAnimator:
    """Stands in for the Animator: a square crop of the driving frame after `cost_s` of
    busy work, so the pipeline can be measured without the models."""

    def __init__(self, crop_size: int, cost_s: float) -> None:
        self._size = crop_size
        self._cost_s = cost_s

    def process(self, image: np.ndarray) -> np.ndarray:
        end = time.perf_counter() + self._cost_s
        out = cv2.resize(image, (self._size, self._size))
        while time.perf_counter() < end:
            pass
        return out

    def recalibrate(self) -> None:
        pass

    def status(self) -> str | None:
        return None

    def set_pose_transfer(self, enabled: bool) -> None:
        pass

    def make_avatar(self, portrait: object) -> object:
        return portrait

    def set_portrait(self, portrait: object) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class BenchConfig:
    clip: Path  # the driving clip, played as a camera
    portrait: Path  # the portrait image, enrolled at crop_size
    seconds: float  # how long to run
    processor: str  # "animator" or "fake"
    crop_size: int  # rendered crop: 256 or 512
    full_frame: bool  # paste the crop back into the whole portrait (else send the crop)
    fake_ms: float  # per-frame cost of the fake processor
    size: tuple[int, int]  # virtual camera frame size
    window_s: float  # length of the first/last windows compared for drift
    renderer: str = "auto"  # warp, neural or auto (neural when installed)
    threads: int = 0  # onnxruntime intra-op threads per session (0: onnxruntime chooses)
    precision: str = "int8"  # neural generator precision (int8, as `headcast stream` runs it)
    overlap: bool = True  # prepare and finish frames on two threads
    detail: str = "auto"  # texture from the full-resolution portrait (animate's --detail)
    feature_shots: bool = True  # K-shot portraits: mouth and eyes from their own shots
    switch_to: Path | None = None  # a second portrait, switched to and back every switch_every
    switch_every: float = 5.0  # seconds


def make_processor(config: BenchConfig, fps: float, portrait: object) -> AvatarProcessor:
    if config.processor == "fake":
        return FakeAnimator(config.crop_size, config.fake_ms / 1000.0)
    from streamer.animate import AnimateOptions, Animator
    from streamer.renderer import RendererConfig

    options = AnimateOptions(fps=fps, full_frame=config.full_frame,
                             renderer=RendererConfig(name=config.renderer,
                                                     threads=config.threads,
                                                     precision=config.precision,
                                                     feature_shots=config.feature_shots),
                             detail=config.detail)  # type: ignore[arg-type]
    return Animator(portrait, options)  # type: ignore[arg-type]


def run(config: BenchConfig) -> None:
    import pyvirtualcam

    from streamer.offline import open_portrait
    from streamer.portrait import EnrollConfig
    from streamer.video_io import video_fps

    pyvirtualcam.register_backend(BACKEND, NullCamBackend)

    # an image is enrolled at crop_size; a .headcast file keeps its K shots and its crop size
    enroll = EnrollConfig(crop_size=config.crop_size)
    portraits = [] if config.processor == "fake" else [open_portrait(config.portrait, enroll)]
    if config.switch_to is not None and portraits:
        portraits.append(open_portrait(config.switch_to, enroll))
    processor = make_processor(config, video_fps(config.clip),
                               portraits[0] if portraits else None)
    # the camera starts once the avatar is ready: started first, it played on while the
    # portrait was enrolled, and those frames counted as offered (85 of 150 "delivered" in a
    # 3 s run of a 30 fps clip, which can offer 90)
    source = VideoFileSource(config.clip, loop=True, realtime=True)
    sink = TimedSink(VirtualCamSink(VirtualCamConfig(size=config.size, backend=BACKEND)))
    window = int(config.seconds * source.fps) + 100  # whole-run percentiles
    pipeline = Pipeline(
        source, processor, [sink], PipelineConfig(stats_window=window, overlap=config.overlap),
        portraits,  # type: ignore[arg-type]
    )
    switches: list[float] = []
    done = threading.Event()

    def switch() -> None:  # as the preview's number keys do
        while len(portraits) > 1 and not done.wait(config.switch_every):
            switches.append(time.monotonic())
            pipeline.select_portrait(len(switches) % 2)

    switcher = threading.Thread(target=switch, name="bench-switch")
    start = time.monotonic()
    with pipeline:
        switcher.start()
        try:
            pipeline.run(duration=config.seconds)
        finally:
            done.set()
            switcher.join()
        elapsed = time.monotonic() - start
    print_report(config, crop_label(processor, config), source.fps, source.captured, elapsed,
                 start, sink, pipeline.stats(), switches)


def crop_label(processor: AvatarProcessor, config: BenchConfig) -> str:
    """The crop the run renders: the processor's portrait's (an enrolled file keeps its own),
    with its shots when it has several; the fake processor's --crop-size."""
    portrait = getattr(processor, "portrait", None)
    if portrait is None:
        return str(config.crop_size)
    shots = len(portrait.sources)
    return f"{portrait.crop_size}" + (f", {shots} shots" if shots > 1 else "")


def _ms(values: np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.1f}" if values.size else "-"


def print_report(
    config: BenchConfig,
    crop: str,
    fps: float,
    offered: int,
    elapsed: float,
    start: float,
    sink: TimedSink,
    stats: PipelineStats,
    switches: Sequence[float] = (),
) -> None:
    captured = np.array(sink.captured)
    latency = np.array(sink.done) - captured
    since = captured - start
    first = latency[since < config.window_s]
    last = latency[since >= since.max(initial=0.0) - config.window_s]
    delivered = latency.size
    sink_stats = stats.sinks[0]
    rows = [
        (
            "processor",
            f"{config.processor} (crop {crop}"
            f"{', full frame' if config.full_frame else ''}, renderer {config.renderer}"
            f"{'' if config.renderer == 'warp' else ' ' + config.precision}, "  # G's precision
            f"threads {config.threads or 'auto'}, "
            f"{'two workers (overlapped)' if config.overlap else 'one worker'})",
        ),
        (
            "clip",
            f"{config.clip.name} at {fps:.0f} fps, virtual camera {config.size[0]}x"
            f"{config.size[1]}",
        ),
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"),
        ("run", f"{elapsed:.1f} s"),
        ("frames offered", f"{offered}"),
        ("frames delivered", f"{delivered} ({100 * delivered / max(offered, 1):.1f} %)"),
        ("output fps", f"{delivered / elapsed:.1f}"),
        ("capture→sink p50 / p95", f"{_ms(latency, 50)} / {_ms(latency, 95)} ms"),
        (
            f"p50 first {config.window_s:.0f} s / last {config.window_s:.0f} s",
            f"{_ms(first, 50)} / {_ms(last, 50)} ms",
        ),
        ("stage: capture→start p50/p95", f"{stats.wait or '-'}"),
        ("stage: process p50/p95", f"{stats.process or '-'}"),
        ("stage: sink send p50/p95", f"{sink_stats.send or '-'}"),
        ("sink mailbox drops", f"{sink_stats.dropped}"),
    ]
    if switches:
        near, away = switch_gaps(np.array(sink.done), np.array(switches))
        rows += [
            ("portrait switches", f"{len(switches)}, every {config.switch_every:g} s"),
            (f"longest frame gap, {SWITCH_WINDOW_S:g} s after a switch: p50 / max",
             f"{_ms(near, 50)} / {_ms(near, 100)} ms"),
            ("longest frame gap away from switches", f"{_ms(away, 100)} ms"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def switch_gaps(done: np.ndarray, switches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """done: when each frame reached the sink; switches: when each switch was asked →
    (the longest gap between frames ending within SWITCH_WINDOW_S of each switch, all the
    gaps ending elsewhere), seconds."""
    gaps, ends = np.diff(done), done[1:]
    after = ends[:, None] - switches[None, :]
    owner = (after >= 0.0) & (after < SWITCH_WINDOW_S)
    near = np.array([gaps[owner[:, k]].max(initial=0.0) for k in range(switches.size)])
    return near, gaps[~owner.any(axis=1)]


def parse_args(argv: Sequence[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument(
        "--clip",
        default="driving/woman_long_expressive.mp4",
        help="driving clip, relative to the data folder",
    )
    parser.add_argument(
        "--portrait",
        default="portraits/mona_lisa.jpg",
        help="portrait image, relative to the data folder (or an absolute path), or an "
        "enrolled .headcast file (K shots, its own crop size)",
    )
    parser.add_argument("--seconds", type=at_least(0.1, float), default=120.0)
    parser.add_argument("--processor", choices=("animator", "fake"), default="animator")
    parser.add_argument("--crop-size", type=int, choices=(256, 512), default=512)
    parser.add_argument("--renderer", choices=("auto", "warp", "neural"), default="auto")
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                        help="neural generator precision (default int8, as `stream` runs it)")
    parser.add_argument("--threads", type=int, default=0,
                        help="onnxruntime intra-op threads per session (0: auto)")
    parser.add_argument("--no-overlap", action="store_true",
                        help="run tracking and rendering on one worker thread")
    parser.add_argument(
        "--full-frame",
        action="store_true",
        help="paste the crop back into the whole portrait, as `stream` does",
    )
    parser.add_argument("--detail", choices=DETAILS, default="auto",
                        help="texture from the full-resolution portrait, as `stream --detail`")
    parser.add_argument("--one-shot-per-frame", action="store_true",
                        help="a .headcast portrait of K shots: mouth and eyes from the whole "
                             "face's shot, as `stream --one-shot-per-frame`")
    parser.add_argument("--switch-to", default=None,
                        help="a second portrait (as --portrait): the avatar switches to it "
                             "and back every --switch-every seconds")
    parser.add_argument("--switch-every", type=float, default=5.0)
    parser.add_argument(
        "--fake-ms", type=float, default=15.0, help="per-frame cost of --processor fake"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=30.0,
        help="seconds compared at the start and the end of the run",
    )
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    if not data.is_dir():
        parser.error(f"no shared data at {data}: pass --data or set HEADCAST_DATA")
    window = min(args.window, args.seconds / 3)
    return BenchConfig(
        data / args.clip,
        data / args.portrait,
        args.seconds,
        args.processor,
        args.crop_size,
        args.full_frame,
        args.fake_ms,
        (1280, 720),
        window,
        renderer=args.renderer,
        threads=args.threads,
        precision=args.precision,
        overlap=not args.no_overlap,
        detail=args.detail,
        feature_shots=not args.one_shot_per_frame,
        switch_to=None if args.switch_to is None else data / args.switch_to,
        switch_every=args.switch_every,
    )


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
