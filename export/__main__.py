"""python -m export [--out DIR] [--checkpoint runs/small/checkpoint.pt]: export the shipped
generators and write their manifest. Without --checkpoint the neural model's files already in
DIR keep their manifest entries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from export.neural_export import build, export_neural, load_checkpoint, parity
from export.onnx_export import example_inputs, export_warp, warp_dims, write_manifest
from export.onnx_export import parity as warp_parity
from streamer.output_file import folder_argument

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "streamer" / "assets"


def _existing(out: Path) -> dict[str, dict]:
    path = out / "manifest.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())["models"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    parser.add_argument("--out", type=folder_argument, default=DEFAULT_OUT,
                        help="output folder")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a models.train checkpoint to export as the neural model")
    parser.add_argument("--name", default="small",
                        help="the model's name in the manifest, whatever the checkpoint's size "
                        "(default small: the name the runtime loads, RendererConfig.model)")
    parser.add_argument("--notes", default="{}", help="JSON object stored in the entries")
    args = parser.parse_args(argv)
    # what can be wrong with the inputs is found before anything in --out is written (a bad
    # checkpoint or --notes had failed after both warps were rewritten)
    try:
        notes = json.loads(args.notes)
    except json.JSONDecodeError as exc:
        parser.error(f"--notes: not a JSON object ({exc})")
    if not isinstance(notes, dict):
        parser.error("--notes: not a JSON object")
    checkpoint = None
    if args.checkpoint is not None:
        try:
            checkpoint = build(*load_checkpoint(args.checkpoint))
        except Exception as exc:  # torch.load's many ways of refusing a file
            parser.error(f"--checkpoint {args.checkpoint}: not a readable models.train "
                         f"checkpoint or exported weights ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:200]})")
    args.out.mkdir(parents=True, exist_ok=True)
    entries = {k: v for k, v in _existing(args.out).items() if not k.startswith("warp_")}
    for size in (256, 512):
        entry = export_warp(size, args.out)
        dims = warp_dims(size)
        err = warp_parity(dims, args.out / entry["file"], example_inputs(dims))
        print(
            f"{entry['file']}: sha256 {entry['sha256'][:12]}…, torch↔onnxruntime max diff {err:.2g}"
        )
        entries[f"warp_{size}"] = entry
    if checkpoint is not None:
        new = export_neural(args.checkpoint, args.out, args.name, notes)
        E, G, _ = checkpoint
        err = parity(E, G, args.out / new[f"embedder_{args.name}"]["file"],
                     args.out / new[f"generator_{args.name}"]["file"])
        for entry in new.values():
            size_mb = (args.out / entry["file"]).stat().st_size / 1e6
            print(f"{entry['file']}: {size_mb:.1f} MB, sha256 {entry['sha256'][:12]}…")
        print(f"neural {args.name}: torch↔onnxruntime max diff {err:.2g}")
        entries.update(new)
    print(f"wrote {write_manifest(entries, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
