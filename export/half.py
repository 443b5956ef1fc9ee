"""python -m export.half [--data DIR] [--name small]: the shipped neural generator in fp16.

For GPUs, whose tensor cores multiply in half precision (onnxruntime's CUDA provider; not
timed here: no GPU with onnxruntime-gpu has been lent to this project); the file is half the
size. Weights and arithmetic in IEEE half precision, inputs and outputs kept float32
(onnxruntime's float16 converter, keep_io_types), so the runtime feeds it as it feeds the
float generator (`--precision fp16`). On a CPU onnxruntime runs it too, casting around the
nodes it has no half kernel for, and more slowly than fp32: here it is checked, not used. It
is checked against the float model on face windows of shared *training* clips, as the
runtime makes them, and listed in the manifest beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.variants import (
    add_generator_variant,
    feeds_for,
    parse_args,
    report,
)

CHECK_CLIPS = 4  # shared/train clips the check windows come from, 4 windows each


def half_generator(fp32: Path, out: Path) -> None:
    """Write the fp16 generator (float32 inputs and outputs) of the float one."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True))
    # the converter appends its input casts after the nodes that read them: onnxruntime
    # sorts for itself, the ONNX checker (run on every manifest entry) refuses
    model.topological_sort(is_deterministic=True)
    onnx.save(model.model, str(out))


def add_fp16_generator(model_dir: Path, name: str, check: list[dict[str, np.ndarray]],
                       note: str) -> dict[str, float]:
    """Write generator_<name>_fp16 beside generator_<name> of model_dir and list it in the
    manifest (with its agreement on `check`, which `note` says); returns that agreement."""
    return add_generator_variant(model_dir, name, "fp16", half_generator, check,
                                 precision="fp16 (float32 inputs and outputs)", checked_on=note)


def main(argv: list[str] | None = None) -> int:
    args = parse_args("python -m export.half", __doc__, argv)
    check = feeds_for(args, CHECK_CLIPS, per_clip=4)
    note = f"{len(check)} windows of {CHECK_CLIPS} shared/train clips"
    scores = add_fp16_generator(args.out, args.name, check, note)
    report(args.out / f"generator_{args.name}_fp16.onnx", len(check), scores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
