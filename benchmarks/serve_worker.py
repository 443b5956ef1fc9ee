"""Frames per second one `serve` session's worker makes, with one thread or two.

    python -m benchmarks.serve_worker [--seconds 20] [--rounds 2] [--crop-size 256]
        [--renderer neural] [--precision int8] [--portrait portraits/mona_lisa.jpg]

A shared clip plays as a WebRTC video track at 30 fps (in process: no network, no codec;
benchmarks.webrtc_latency's Feeder into an AvatarTrack, as the latency benchmark's), the
real Animator animates a portrait through streamer.webrtc_tracks.ProcessedTrack, and the
frames it delivers per second are counted after a 3 s warm-up, with the Animator's two halves
on one thread (`serve --no-overlap`) and on two (the default), alternating, `--rounds` times.
Also prints receive → processed latency p50 (the time a frame waits and is worked on).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.quality import at_least, default_data_dir
from benchmarks.webrtc_latency import Feeder, clip_frames

FPS = 30.0
WARMUP_S = 3.0


async def measure(factory, frames: list[np.ndarray], overlap: bool, seconds: float  # type: ignore[no-untyped-def]
                  ) -> tuple[float, float]:
    """→ (frames delivered per second, receive → processed p50 ms)."""
    from streamer.webrtc_tracks import AvatarTrack, FrameSlot, ProcessedTrack

    first, second = ThreadPoolExecutor(1), ThreadPoolExecutor(1) if overlap else None
    latencies: list[float] = []
    slot = FrameSlot()  # the camera: a clip put at FPS, sent as a live track at FPS
    track = ProcessedTrack(AvatarTrack(slot, FPS), factory.create(), first,
                           on_result=lambda f: latencies.append(time.monotonic() - f.capture_ts),
                           finish_executor=second)
    with Feeder(slot.put, frames, FPS):
        track.start()
        await asyncio.sleep(WARMUP_S)
        done, latencies[:] = track.worker.frames_done, []
        await asyncio.sleep(seconds)
        fps = (track.worker.frames_done - done) / seconds
        track.stop()
    for executor in (first, second):
        if executor is not None:
            executor.shutdown(wait=True)
    return fps, float(np.percentile(latencies, 50)) * 1e3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=at_least(0.1, float), default=20.0)
    parser.add_argument("--rounds", type=at_least(1), default=2)
    parser.add_argument("--crop-size", type=int, choices=(256, 512), default=256)
    parser.add_argument("--renderer", choices=("auto", "warp", "neural"), default="neural")
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--portrait", default="portraits/mona_lisa.jpg")
    parser.add_argument("--clip", default="driving/woman_long_expressive.mp4")
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args(argv)
    from streamer.offline import enroll_shots
    from streamer.portrait import EnrollConfig
    from streamer.renderer import RendererConfig
    from streamer.video_io import read_image
    from streamer.webrtc_cli import AnimatorFactory

    data = args.data or default_data_dir()
    portrait = enroll_shots([read_image(data / args.portrait)],
                            EnrollConfig(crop_size=args.crop_size))
    factory = AnimatorFactory(portrait, RendererConfig(name=args.renderer,
                                                       precision=args.precision))
    frames = clip_frames(data / args.clip, 150, 480)
    print(f"{Path(args.portrait).stem}, crop {args.crop_size}, renderer {args.renderer} "
          f"{args.precision}; {args.clip} at {FPS:.0f} fps, {args.seconds:.0f} s per run\n")
    print("| round | threads | frames/s | receive → processed p50 |")
    print("|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        for overlap in (False, True):
            fps, p50 = asyncio.run(measure(factory, frames, overlap, args.seconds))
            print(f"| {round_} | {'two' if overlap else 'one'} | {fps:.1f} | {p50:.0f} ms |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
