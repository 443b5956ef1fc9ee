"""python -m benchmarks.training_curves RUN_DIR [-o docs/training_small.png]: plot a training
run's metrics.jsonl: the content losses (smoothed) and the held-out PSNR gain of the output
over the training-free warp, face window and mouth box."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load(run: Path) -> tuple[list[dict], list[dict]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    return ([r for r in records if "l1" in r], [r for r in records if "val_psnr" in r])


def smooth(values: np.ndarray, width: int = 25) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.convolve(np.pad(values, (width // 2, width - 1 - width // 2), mode="edge"),
                       kernel, mode="valid")


def plot(run: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = load(run)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = np.array([r["step"] for r in train])
    with_base = all("l1_warp" in r for r in train)
    for key, label in (("l1", "L1"), ("l1_mouth", "L1 mouth box"), ("ms_ssim", "1 − MS-SSIM")):
        flip = (lambda v: 1 - v) if key == "ms_ssim" else (lambda v: v)  # noqa: E731
        values = flip(np.array([r[key] for r in train]))
        if with_base:  # runs that log the warp's own loss: plot the output's minus the warp's
            values = values - flip(np.array([r[f"{key}_warp"] for r in train]))
        a.plot(steps, smooth(values), label=label)
    a.set_xlabel("step")
    a.set_title("content losses" + (" minus the warp's" if with_base else "")
                + " (moving mean of 25 logs)")
    a.legend()
    vs = np.array([r["step"] for r in val])
    face = np.array([r["val_psnr"] - r["val_psnr_warp"] for r in val])
    mouth = np.array([r["val_mouth_psnr"] - r["val_mouth_psnr_warp"] for r in val])
    b.plot(vs, face, "o-", label="face window")
    b.plot(vs, mouth, "s-", label="mouth box")
    b.axhline(0, color="grey", lw=0.8)
    b.set_xlabel("step")
    b.set_ylabel("dB")
    b.set_title("held-out identities: PSNR gain over the warp")
    b.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    from streamer.output_file import parent_folder_argument
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_curves",
                                     description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("-o", "--out", type=parent_folder_argument,
                        default=Path("docs/training_small.png"))
    args = parser.parse_args(argv)
    metrics = args.run / "metrics.jsonl"
    if not metrics.is_file() or not load(args.run)[0]:  # a traceback from deep in the plot
        parser.error(f"{metrics}: no training steps logged (is {args.run} a models.train "
                     "output folder?)")
    plot(args.run, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
