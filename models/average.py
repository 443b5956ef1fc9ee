"""python -m models.average A B --weight T --out soup.pt: two trainings of one model averaged
weight by weight, (1 − T)·A + T·B — a "model soup" (Wortsman et al. 2022).

A and B are models.train checkpoints (.pt) or exported weights (.npz, export.neural_export) of
the same dimensions; averaging means something only when B was trained on from A (or both
from one start), so that their weights lie in one basin. The result is a checkpoint that
`python -m export --checkpoint` takes.

Why: the generator trained on the image the runtime shows (small_cpu_region.json, B) draws
more of a real mouth's interior than the shipped one (A) — a tongue where the warp has a dark
cavity — and on a moustached painting MediaPipe then reads the pink as closed lips. Halfway
keeps most of B's held-out gain (lab notes, "Einstein's mouth, and half of each").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from models.weights import NETS, load_states


class AverageError(ValueError):
    """The two weight files cannot be averaged (other dimensions or other parameters)."""


def average(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]],
            weight: float) -> dict[str, dict[str, torch.Tensor]]:
    """(1 − weight)·a + weight·b for every floating-point tensor; the rest (counters) from b."""
    if not 0.0 <= weight <= 1.0:
        raise AverageError(f"weight {weight} is not in [0, 1]")
    out: dict[str, dict[str, torch.Tensor]] = {}
    for net in NETS:
        if a[net].keys() != b[net].keys():
            raise AverageError(f"{net}: the two have other parameters "
                               f"({sorted(a[net].keys() ^ b[net].keys())[:3]} …)")
        out[net] = {}
        for key, vb in b[net].items():
            va = a[net][key]
            if va.shape != vb.shape:
                raise AverageError(f"{net}.{key}: shape {tuple(va.shape)} ≠ {tuple(vb.shape)}")
            out[net][key] = (torch.lerp(va.float(), vb.float(), weight).to(vb.dtype)
                             if vb.is_floating_point() else vb.clone())
    return out


def average_files(a: Path, b: Path, weight: float, out: Path) -> Path:
    dims_a, states_a = load_states(a)
    dims_b, states_b = load_states(b)
    if dims_a != dims_b:
        raise AverageError(f"{a} and {b} are models of other dimensions: average two "
                           "trainings of one model size")
    soup = average(states_a, states_b, weight)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims_b, **soup,
                "averaged": {"a": str(a), "b": str(b), "weight": weight}}, out)
    return out


def main(argv: list[str] | None = None) -> int:
    from streamer.output_file import parent_folder_argument

    parser = argparse.ArgumentParser(prog="python -m models.average", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the first weights (.pt or .npz)")
    parser.add_argument("b", type=Path, help="the second weights (.pt or .npz)")
    parser.add_argument("--weight", type=float, default=0.5, help="B's share, in [0, 1]")
    parser.add_argument("--out", type=parent_folder_argument, required=True,
                        help="the averaged checkpoint (.pt)")
    args = parser.parse_args(argv)
    try:
        path = average_files(args.a, args.b, args.weight, args.out)
    except (AverageError, FileNotFoundError, KeyError) as exc:
        parser.exit(2, f"python -m models.average: {type(exc).__name__}: {exc}\n")
    print(f"wrote {path}: {1 - args.weight:g}·{args.a} + {args.weight:g}·{args.b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
