"""python -m export [--out DIR]: export the shipped generators and their manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from export.onnx_export import example_inputs, export_warp, parity, warp_dims, write_manifest

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "streamer" / "assets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    entries = {}
    for size in (256, 512):
        entry = export_warp(size, args.out)
        dims = warp_dims(size)
        err = parity(dims, args.out / entry["file"], example_inputs(dims))
        print(
            f"{entry['file']}: sha256 {entry['sha256'][:12]}…, torch↔onnxruntime max diff {err:.2g}"
        )
        entries[f"warp_{size}"] = entry
    print(f"wrote {write_manifest(entries, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
