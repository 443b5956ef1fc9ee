"""What the generator's other precisions share (export.quantize: int8, export.half: fp16):
the face windows they are calibrated and checked on, how close each draws to the float
generator, and their listing in the manifest beside it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from export.neural_export import _dims, _entry
from export.onnx_export import write_manifest

CLIPS = 8  # training clips the calibration windows come from
WINDOWS_PER_CLIP = 8  # windows per clip (spread over its first 150 frames)


def training_clips(data_dir: Path, count: int = CLIPS) -> list[Path]:
    """`count` clips of shared/train, spread over them in name order."""
    clips = sorted((data_dir / "train").glob("*.mp4"))
    if not clips:
        raise FileNotFoundError(f"no training clips in {data_dir / 'train'}")
    step = max(1, len(clips) // count)
    return clips[::step][:count]


def calibration_feeds(clips: list[Path], model_dir: Path, name: str,
                      per_clip: int = WINDOWS_PER_CLIP, frames: int = 150
                      ) -> list[dict[str, np.ndarray]]:
    """The inputs of model_dir's generator `name` for windows of each clip driving its own
    first frame (its own embedder's ψ: the shipped model's had been taken whatever the
    folder, so another model was calibrated and checked on inputs not its own). Raises
    ModelFileError, before any work, where the folder has no such model."""
    from streamer.animate import AnimateOptions, Animator
    from streamer.neural import WarpedWindow, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.renderer import RendererConfig, asset_dir, load_manifest_entry
    from streamer.video_io import read_video_frames, video_fps

    config = RendererConfig(name="neural", model_dir=model_dir, model=name)
    for key in (f"embedder_{name}", f"generator_{name}"):
        load_manifest_entry(asset_dir(config), key)
    feeds: list[dict[str, np.ndarray]] = []
    for clip in clips:
        images = list(read_video_frames(clip, frames))
        portrait = enroll_images(images[:1], EnrollConfig(crop_size=512))
        portrait = with_embedding(portrait, images[:1], config)
        options = AnimateOptions(fps=video_fps(clip), renderer=config)
        animator = Animator(portrait, options)
        wanted = set(np.linspace(1, len(images) - 1, per_clip).round().astype(int))
        for i, image in enumerate(images):
            prepared = animator.prepare(image)  # every frame: the tracker follows the clip
            if i in wanted:
                assert isinstance(prepared.begun, WarpedWindow)
                feeds.append(prepared.begun.feed)
        animator.close()
    return feeds


def agreement(fp32: Path, other: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """How close the generator in another precision draws to the float one: PSNR of the drawn
    image (0–255) and mean / max |Δ| of the blend mask, over `feeds`."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                for p in (fp32, other)]
    errors, mask_mean, mask_max = [], [], []
    for feed in feeds:
        (d0, m0), (d1, m1) = (s.run(["drawn", "mask"], feed) for s in sessions)
        errors.append(float(np.mean(((d0 - d1) * 127.5) ** 2)))
        mask_mean.append(float(np.abs(m0 - m1).mean()))
        mask_max.append(float(np.abs(m0 - m1).max()))
    return {
        "drawn_psnr_db": float(10 * np.log10(255.0**2 / max(np.mean(errors), 1e-12))),
        "mask_mean_abs": float(np.mean(mask_mean)),
        "mask_max_abs": float(np.max(mask_max)),
    }


def add_generator_variant(model_dir: Path, name: str, suffix: str,
                          make: Callable[[Path, Path], None], check: list[dict[str, np.ndarray]],
                          **extra: object) -> dict[str, float]:
    """make(fp32 file, out file) writes generator_<name>_<suffix> beside generator_<name> of
    model_dir; it is listed in the manifest (with `extra` and its agreement on `check`) and
    the agreement returned."""
    from export.__main__ import _existing
    from streamer.renderer import check_file

    entries = _existing(model_dir)
    key = f"generator_{name}"
    if key not in entries:
        raise FileNotFoundError(f"{model_dir}: no {key} in the manifest; run python -m export")
    fp32 = check_file(model_dir, entries[key])
    out = model_dir / f"{key}_{suffix}.onnx"
    make(fp32, out)
    scores = agreement(fp32, out, check)
    notes = {k: v for k, v in entries[key].items()
             if k not in ("file", "sha256", "kind", "dims", "opset", "inputs", "outputs")}
    entries[f"{key}_{suffix}"] = _entry(out, "generator", _dims(entries[key]["dims"]), **notes,
                                        **extra, agreement=scores)
    write_manifest(entries, model_dir)
    return scores


def feeds_for(args: argparse.Namespace, count: int = CLIPS,
              per_clip: int = WINDOWS_PER_CLIP) -> list[dict[str, np.ndarray]]:
    """calibration_feeds of the command's model (--out, --name) on `count` clips of its
    --data. Exits with one line (status 2) where the model or the clips are not there (each
    had been a traceback, the model's only after the clips' 25 s of work)."""
    import sys

    from streamer.errors import HeadcastError

    try:
        clips = training_clips(shared_data(args.data), count)
        return calibration_feeds(clips, args.out, args.name, per_clip)
    except (HeadcastError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def shared_data(given: Path | None) -> Path:
    """--data, else $HEADCAST_DATA, else ../shared/data beside the project."""
    from benchmarks.quality import default_data_dir

    return given or default_data_dir()


def parse_args(prog: str, doc: str | None, argv: list[str] | None) -> argparse.Namespace:
    """--data, --out (the model folder) and --name, as both commands take them."""
    from export.__main__ import DEFAULT_OUT

    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="shared data folder (default: $HEADCAST_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder")
    parser.add_argument("--name", default="small", help="model name in the manifest")
    return parser.parse_args(argv)


def report(out: Path, checked: int, scores: dict[str, float]) -> None:
    rounded = json.dumps({k: round(v, 4) for k, v in scores.items()})
    print(f"{out.name}: {out.stat().st_size / 1e6:.1f} MB; against float on {checked} "
          f"windows it was not made from: {rounded}")
