"""Speed per stage: decode, track, motion, render, paste-back, at the 256 and 512 crops.

    python -m benchmarks.speed [--frames 300] [--clip woman_long_expressive]
                               [--portraits mona_lisa einstein] [--threads 0]

Prints p50/p95 milliseconds per stage and for track + motion + render + paste-back (the
per-frame cost of animating one driving frame), and the load time of a .headcast file.
Targets on a 2-core CPU: training-free renderer (`--renderer warp`), track + motion + render +
paste-back ≤ 25 ms p50 at the 512 crop; neural renderer with the small model
(`--renderer neural`), ≥ 25 fps, i.e. the same sum ≤ 40 ms p50 at the 256 crop.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.quality import (
    MODEL_DIR_HELP,
    at_least,
    clip_file,
    default_data_dir,
    model_folder,
    portrait_file,
)
from streamer.devices import DEVICES, device_providers
from streamer.errors import DeviceUnavailableError
from streamer.neural import PRECISIONS
from streamer.paste import DETAILS

TARGETS_MS = {"warp": (512, 25.0), "neural": (256, 40.0)}  # renderer → (crop, p50 ms)
STAGES = ("decode", "track", "motion", "render", "paste")


def measure(clip: Path, portrait_path: Path, crop: int, frames: int, threads: int,
            renderer: str = "warp", precision: str = "fp32", detail: str = "auto",
            providers: tuple[str, ...] = ("CPUExecutionProvider",),
            model_dir: Path | None = None) -> dict:
    from streamer.animate import AnimateOptions, Animator
    from streamer.offline import enroll_shots
    from streamer.paste import full_detail
    from streamer.portrait import EnrollConfig
    from streamer.renderer import RendererConfig
    from streamer.video_io import read_image, read_video_frames

    config = RendererConfig(name=renderer, threads=threads, precision=precision,
                            providers=providers, model_dir=model_dir)
    portrait = enroll_shots([read_image(portrait_path)], EnrollConfig(crop_size=crop),
                            model=config)
    anim = Animator(portrait, AnimateOptions(renderer=config, detail=detail))  # type: ignore[arg-type]
    times: dict[str, list[float]] = {k: [] for k in (*STAGES, "total")}
    decoder = read_video_frames(clip, frames)
    for i in range(frames):
        t0 = time.perf_counter()
        image = next(decoder, None)
        if image is None:
            break
        decode = (time.perf_counter() - t0) * 1e3
        anim.process(image)
        if i < 5:  # warm-up
            continue
        times["decode"].append(decode)
        for stage in STAGES[1:]:
            times[stage].append(anim.timings[stage])
        times["total"].append(sum(anim.timings[s] for s in STAGES[1:]))
    anim.close()
    result: dict = {k: (float(np.percentile(v, 50)), float(np.percentile(v, 95)))
                    for k, v in times.items()}
    result["detail"] = "full" if full_detail(portrait.box, detail) else "crop"  # type: ignore[arg-type]
    return result


def load_time(portrait_path: Path) -> float:
    """Median ms to load an enrolled .headcast file."""
    from streamer.portrait import enroll_images, load_portrait, save_portrait
    from streamer.video_io import read_image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.headcast"
        save_portrait(enroll_images([read_image(portrait_path)]), path)
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            load_portrait(path)
            runs.append((time.perf_counter() - t) * 1e3)
    return float(np.median(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=at_least(6), default=300)  # 5 warm up
    parser.add_argument("--clip", default="woman_long_expressive")
    parser.add_argument("--portraits", nargs="+", default=["mona_lisa", "einstein"])
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: auto)")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--renderer", choices=("warp", "neural"), default="warp")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="the neural generator's precision")
    parser.add_argument("--device", choices=("auto", *DEVICES), default="auto",
                        help="onnxruntime providers, as the commands' --device (README, 'GPU')")
    parser.add_argument("--detail", choices=DETAILS, default="auto",
                        help="texture from the full-resolution portrait (as animate's --detail)")
    parser.add_argument("--model-dir", type=model_folder, default=None, help=MODEL_DIR_HELP)
    args = parser.parse_args(argv)
    try:
        providers = device_providers(args.device)
    except DeviceUnavailableError as exc:
        parser.error(str(exc))
    target_crop, target_ms = TARGETS_MS[args.renderer]
    data = args.data or default_data_dir()
    clip = clip_file(data, args.clip)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; clip {clip.name}, "
          f"{args.frames} frames (first 5 not counted); renderer {args.renderer}"
          f"{' ' + args.precision if args.renderer == 'neural' else ''}; onnxruntime "
          f"{', '.join(providers)}; models {args.model_dir or 'shipped'}\n")
    header = ("| portrait | crop | detail | " + " | ".join(STAGES)
              + " | track+motion+render+paste | target |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in args.portraits:
        path = portrait_file(data, name)
        for crop in (256, 512):
            r = measure(clip, path, crop, args.frames, args.threads, args.renderer,
                        args.precision, args.detail, providers, args.model_dir)
            cells = " | ".join(f"{r[s][0]:.1f} / {r[s][1]:.1f}" for s in STAGES)
            verdict = "PASS" if r["total"][0] <= target_ms else "FAIL"
            verdict = verdict if crop == target_crop else "—"
            total = f"{r['total'][0]:.1f} / {r['total'][1]:.1f}"
            print(f"| {name} | {crop} | {r['detail']} | {cells} | {total} | {verdict} |",
                  flush=True)
    print(f"\ncells: p50 / p95 ms per frame. Target: total ≤ {target_ms:.0f} ms p50 at the "
          f"{target_crop} crop.")
    for name in args.portraits:
        path = portrait_file(data, name)
        print(f"load {name}.headcast: {load_time(path):.1f} ms (median of 20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
