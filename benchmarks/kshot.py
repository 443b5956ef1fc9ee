"""python -m benchmarks.kshot: the few-shot trend (Zakharov et al. 2019, Table 1) on held-out
frames, and the neural renderer against the training-free one.

For every evaluation clip (the six man_*/woman_* clips and both few_shot_* clips): the K
shots are spread over the first 70% of the clip, the first frame always among them and always
the rendered one (its full frame is what the crop is pasted into); every frame the warp starts
from the shot nearest the driver's landmarks (streamer/references.py), so K changes what the
embedder and fine-tuning see and where the warp starts, for both renderers; the driver is the
last 30% (never seen in training); motion is absolute (target landmarks = the driver's own,
the portrait being the same person); the driver's frames are rendered in order, as a video
plays, and `eval_frames` of them spread over it are compared with the driver frame:
face-region PSNR / SSIM over all frames, mouth-region PSNR / SSIM over frames whose mouth
opening > 0.1 IOD, and AKD (MediaPipe on the output). Δ columns compare each row with the
training-free renderer on the same K shots. Prints a table per method and writes
out/kshot/kshot.json and a picture sheet of an open mouth and a blink.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks import protocol as P
from benchmarks.quality import MODEL_DIR_HELP, at_least, clip_file, log, model_folder
from streamer.output_file import folder_argument

CLIPS = ("man_glasses_lab", "man_glasses_office", "man_glasses_orange_wall",
         "man_green_backdrop", "woman_beige_backdrop", "woman_long_expressive",
         "few_shot_woman_indoor", "few_shot_woman_outdoor")
SPLIT = 0.7  # shots from before, driver frames from after


@dataclass(frozen=True)
class KShotConfig:
    data: Path
    clips: tuple[str, ...] = CLIPS
    ks: tuple[int, ...] = (1, 8, 32)
    finetune_steps: int = 100  # 0: skip the fine-tuned rows
    precision: str = "fp32"  # shipped neural generator: fp32 or int8 (fine-tuned ones are fp32)
    generator_region: str = "mouth"  # where G may replace the warp (RendererConfig)
    feature_shots: bool = True  # mouth and eyes from their own nearest shots (RendererConfig)
    eval_frames: int = 40  # driver frames per clip, spread over its last 30%
    crop_size: int = 512  # the product's default crop
    out: Path = Path("out/kshot")
    model_dir: Path | None = None  # models to measure (RendererConfig); None: the shipped


@dataclass
class Scores:
    face_psnr: list[float] = field(default_factory=list)
    face_ssim: list[float] = field(default_factory=list)
    mouth_psnr: list[float] = field(default_factory=list)  # open-mouth frames only
    mouth_ssim: list[float] = field(default_factory=list)
    driver_lms: list[np.ndarray | None] = field(default_factory=list)
    output_lms: list[np.ndarray | None] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "face_psnr": P.mean_psnr(self.face_psnr),
            "face_ssim": P.mean_finite(self.face_ssim),
            "mouth_psnr": P.mean_psnr(self.mouth_psnr),
            "mouth_ssim": P.mean_finite(self.mouth_ssim),
            "akd": P.akd(self.driver_lms, self.output_lms),
            "open_frames": len(self.mouth_psnr),
        }


def load_clip(path: Path) -> list[np.ndarray]:
    from streamer.video_io import read_video_frames

    return list(read_video_frames(path))


def track_all(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    from streamer.tracker import FaceTracker

    with FaceTracker(video=True) as tracker:
        return [tracker.detect(f) for f in frames]


def make_portrait(frames: list[np.ndarray], lms: list[np.ndarray | None], k: int,
                  cfg: KShotConfig, finetune: bool):
    """K shots spread over the first 70% → an enrolled (and maybe fine-tuned) portrait. The
    shots keep the clip's video-mode landmarks, as `headcast enroll --from-video` does."""
    from streamer.offline import enroll_shots, finetune_portrait
    from streamer.portrait import EnrollConfig
    from streamer.renderer import RendererConfig

    split = int(SPLIT * len(frames))
    picks = np.unique(np.linspace(0, split - 1, k).round().astype(int))
    shots = [frames[i] for i in picks]
    model = RendererConfig(model_dir=cfg.model_dir)
    portrait = enroll_shots(shots, EnrollConfig(crop_size=cfg.crop_size), skip_faceless=True,
                            render_first=True, landmarks=[lms[i] for i in picks], model=model)
    if finetune:
        portrait = finetune_portrait(portrait, shots, cfg.finetune_steps, progress=False,
                                     model=model)
    return portrait


def evaluate(portrait, renderer_name: str, frames: list[np.ndarray],
             lms: list[np.ndarray | None], eval_idx: np.ndarray, precision: str = "fp32",
             generator_region: str = "mouth", feature_shots: bool = True,
             model_dir: Path | None = None) -> tuple[Scores, dict]:
    """Render the driver frames through one renderer; score them. Returns the scores and
    the outputs of every evaluated frame by index."""
    from streamer.paste import PasteBack
    from streamer.renderer import RendererConfig, create_renderer
    from streamer.tracker import FaceTracker

    scores = Scores()
    outputs = {}
    renderer = create_renderer(portrait, RendererConfig(name=renderer_name, precision=precision,
                                                        generator_region=generator_region,
                                                        feature_shots=feature_shots,
                                                        model_dir=model_dir))
    # The renderers are compared at their crop: full detail (streamer.paste) is a paste-back
    # choice that applies to every renderer alike; left out, the table stays comparable.
    paste = PasteBack(portrait, "crop")
    scored = set(eval_idx.tolist())
    with FaceTracker(video=False) as tracker:
        # Every driver frame is rendered, in order, as a video plays (the renderer's choice of
        # shot cross-fades over frames); the evaluated ones are scored.
        for i in range(int(eval_idx[0]), int(eval_idx[-1]) + 1):
            lm = lms[i]
            if lm is None:
                continue
            crop = renderer.render(portrait.box.to_crop(lm))
            if i not in scored:
                continue
            out = paste.paste(crop)
            outputs[i] = out
            s = P.image_scores(frames[i], out, lm)
            scores.face_psnr.append(s.face_psnr)
            scores.face_ssim.append(s.face_ssim)
            if P.mouth_opening(lm) > 0.1:
                scores.mouth_psnr.append(s.mouth_psnr)
                scores.mouth_ssim.append(s.mouth_ssim)
            scores.driver_lms.append(lm)
            scores.output_lms.append(tracker.detect(out))
    renderer.close()
    return scores, outputs


def run(cfg: KShotConfig) -> dict:
    results: dict[str, dict[str, Scores]] = {}
    sheet: dict[str, dict] = {}
    for clip in cfg.clips:
        path = clip_file(cfg.data, clip)
        frames = load_clip(path)
        lms = track_all(frames)
        split = int(SPLIT * len(frames))
        eval_idx = np.unique(np.linspace(split, len(frames) - 1, cfg.eval_frames).round()
                             .astype(int))
        rows: dict[str, Scores] = {}
        for k in cfg.ks:
            for tuned in (False, True) if cfg.finetune_steps else (False,):
                t0 = time.perf_counter()
                portrait = make_portrait(frames, lms, k, cfg, tuned)
                t_enroll = time.perf_counter() - t0
                methods = [("neural", f"K={k}" + (" fine-tuned" if tuned else ""))]
                if not tuned:
                    methods.append(("warp", f"training-free K={k}"))
                for renderer, name in methods:
                    scores, outputs = evaluate(portrait, renderer, frames, lms, eval_idx,
                                               cfg.precision, cfg.generator_region,
                                               cfg.feature_shots, cfg.model_dir)
                    rows[name] = scores
                    if clip == cfg.clips[0] or clip == "woman_long_expressive":
                        sheet.setdefault(clip, {"frames": frames, "lms": lms})[name] = outputs
                    log(f"{clip:26s} {name:16s} enroll {t_enroll:5.1f}s  "
                        + "  ".join(f"{k_}={v:.3f}" for k_, v in scores.summary().items()))
        results[clip] = rows
    report = summarise(results)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "kshot.json").write_text(json.dumps(report, indent=1))
    write_sheet(sheet, cfg.out / "kshot_sheet.jpg")
    return report


def summarise(results: dict[str, dict[str, Scores]]) -> dict:
    """Mean over clips of each method's per-clip summary."""
    names = list(next(iter(results.values())))
    per_clip = {clip: {n: rows[n].summary() for n in rows} for clip, rows in results.items()}
    mean = {}
    for n in names:
        keys = per_clip[next(iter(per_clip))][n].keys()
        mean[n] = {k: float(np.nanmean([per_clip[c][n][k] for c in per_clip])) for k in keys}
    return {"mean": mean, "per_clip": per_clip}


def baseline_name(name: str) -> str:
    """The training-free row a method is compared with: the one on the same K shots."""
    k = name.split()[-1] if name.startswith("training-free") else name.split()[0]
    return f"training-free {k}"


def print_table(report: dict) -> None:
    """Markdown table of the means over clips, with the differences to the training-free
    renderer on the same K shots (mouth columns: frames whose mouth opening > 0.1 IOD)."""
    mean = report["mean"]
    print("| method | face PSNR | face SSIM | mouth PSNR | mouth SSIM | AKD | Δ mouth PSNR | "
          "Δ mouth SSIM | Δ face PSNR | Δ AKD |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in mean.items():
        base = mean[baseline_name(name)]
        print(f"| {name} | {m['face_psnr']:.2f} | {m['face_ssim']:.4f} | {m['mouth_psnr']:.2f} | "
              f"{m['mouth_ssim']:.4f} | {m['akd']:.2f} | "
              f"{m['mouth_psnr'] - base['mouth_psnr']:+.2f} dB | "
              f"{m['mouth_ssim'] - base['mouth_ssim']:+.4f} | "
              f"{m['face_psnr'] - base['face_psnr']:+.2f} dB | {m['akd'] - base['akd']:+.2f} |")


def _pick_frames(lms: list[np.ndarray | None], indices: list[int]) -> tuple[int, int]:
    """The evaluated frame with the widest mouth and the one with the most closed eyes."""
    mouth = max(indices, key=lambda i: P.mouth_opening(lms[i]))
    blink = min(indices, key=lambda i: P.eye_openness(lms[i]))
    return mouth, blink


SHEET_COLUMNS = ("training-free K=1", "K=1", "training-free K=8", "K=8", "K=8 fine-tuned",
                 "training-free K=32", "K=32 fine-tuned")


def sheet_columns(sheet: dict) -> list[str]:
    """The sheet's columns after the driver: those of SHEET_COLUMNS that ran for every clip;
    where none did (a run of other Ks: `--ks 2` had crashed here), every row that did."""
    entries = list(sheet.values())
    ran = [c for c in entries[0] if c not in ("frames", "lms")] if entries else []
    common = [c for c in ran if all(c in entry for entry in entries)]
    return [c for c in SHEET_COLUMNS if c in common] or common


def write_sheet(sheet: dict, path: Path) -> None:
    """Rows: an open mouth and a blink per clip; columns: driver, then sheet_columns (the face
    box, 192 px)."""
    from benchmarks.quality import face_crop

    cols = sheet_columns(sheet)
    rows = []
    for entry in sheet.values():
        frames, lms = entry["frames"], entry["lms"]
        indices = sorted(set.intersection(*(set(entry[c]) for c in cols)))
        for i in _pick_frames(lms, indices):
            tiles = [face_crop(frames[i], lms[i])] + [face_crop(entry[c][i], lms[i]) for c in cols]
            rows.append(np.concatenate([cv2.resize(t, (192, 192)) for t in tiles], axis=1))
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    for j, name in enumerate(["driver", *cols]):
        cv2.putText(header, name, (j * 192 + 4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.imwrite(str(path), np.concatenate([header, *rows], axis=0),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.quality import default_data_dir
    from streamer.neural import GENERATOR_REGIONS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.kshot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--ks", type=at_least(1), nargs="+", default=[1, 8, 32])
    parser.add_argument("--finetune-steps", type=at_least(0), default=100)
    parser.add_argument("--eval-frames", type=at_least(1), default=40)
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="the shipped generator's precision (fine-tuned ones run fp32)")
    parser.add_argument("--generator-region", choices=GENERATOR_REGIONS, default="mouth",
                        help="where G may replace the warp: around the mouth and where the "
                             "warp has no texture, or wherever G's mask says")
    parser.add_argument("--no-feature-shots", action="store_true",
                        help="warp the mouth and eyes from the shot nearest in the whole face, "
                             "as the rest (by default: each from its own nearest shot)")
    parser.add_argument("--model-dir", type=model_folder, default=None, help=MODEL_DIR_HELP)
    parser.add_argument("--out", type=folder_argument, default=Path("out/kshot"))
    args = parser.parse_args(argv)
    cfg = KShotConfig(data=args.data or default_data_dir(), clips=tuple(args.clips),
                      ks=tuple(args.ks), finetune_steps=args.finetune_steps,
                      eval_frames=args.eval_frames, precision=args.precision,
                      generator_region=args.generator_region,
                      feature_shots=not args.no_feature_shots, out=args.out,
                      model_dir=args.model_dir)
    print_table(run(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
