"""Export the warp generator to ONNX and describe it in the runtime's manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch

from models.warp_generator import WarpDims, WarpGenerator
from streamer.warp_inputs import FIELD_SIZE, NUM_CTRL, NUM_LID, NUM_MOUTH

OPSET = 17
INPUT_NAMES = [
    "ctrl", "tps", "mouth_poly", "mouth_frame", "mouth_box", "fine_boxes", "colors", "lids",
    "irises"]
OUTPUT_NAMES = ["flow", "mouth", "fine_flow", "eye_white"]


def example_inputs(dims: WarpDims) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes: a mildly perturbed identity warp and an open mouth."""
    gen = torch.Generator().manual_seed(0)
    ctrl = torch.rand(dims.num_ctrl, 2, generator=gen) * 2 - 1
    tps = torch.randn(dims.num_ctrl + 3, 2, generator=gen) * 1e-3
    tps[-2, 0] += 1.0  # identity affine part
    tps[-1, 1] += 1.0
    angle = torch.linspace(0, 2 * torch.pi, dims.num_mouth + 1)[:-1]
    poly = torch.stack([0.2 * torch.cos(angle), 0.05 + 0.1 * torch.sin(angle)], dim=1)
    frame = torch.tensor([0.0, -0.05, 0.0, 5.0, 5.0, 0.0, 1.0, 1.0, 0.3, 1.0])
    box = torch.tensor([-0.25, -0.1, 0.25, 0.2])
    fine = torch.tensor(
        [[-0.4, -0.3, -0.1, -0.1], [0.1, -0.3, 0.4, -0.1], [-0.3, -0.15, 0.3, 0.25]]
    )
    lids = torch.stack([torch.stack([_eye(c, 0.3), _eye(c, 1.0)]) for c in (-0.25, 0.25)])
    irises = torch.tensor([[[-0.24, -0.2], [-0.25, -0.2]], [[0.26, -0.2], [0.25, -0.2]]])
    return ctrl, tps, poly, frame, box, fine, torch.rand(4, 3, generator=gen), lids, irises


def _eye(centre: float, open_: float) -> torch.Tensor:
    """(2, NUM_LID, 2) lid lines of an eye at (centre, -0.2), open_ × open, corners shared."""
    x = torch.linspace(-0.1, 0.1, NUM_LID) * (1.0 if centre < 0 else -1.0)
    arc = 1.0 - (x / 0.1) ** 2
    y = torch.stack([-0.2 - 0.02 * arc * open_, -0.2 + 0.03 * arc])
    return torch.stack([(centre + x).expand(2, -1), y], dim=2)


def warp_dims(crop_size: int) -> WarpDims:
    return WarpDims(
        crop_size=crop_size,
        field_div=crop_size // FIELD_SIZE,
        num_ctrl=NUM_CTRL,
        num_mouth=NUM_MOUTH,
        num_lid=NUM_LID,
    )


def export_warp(crop_size: int, out_dir: Path) -> dict:
    """Write warp_{crop_size}.onnx into out_dir; returns its manifest entry."""
    dims = warp_dims(crop_size)
    model = WarpGenerator(dims).eval()
    inputs = example_inputs(dims)
    path = out_dir / f"warp_{crop_size}.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model,
            inputs,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "opset": OPSET,
        "kind": "warp",
        "dims": asdict(dims),
        "inputs": [_describe(v) for v in proto.graph.input],
        "outputs": [_describe(v) for v in proto.graph.output],
    }


def _describe(value: onnx.ValueInfoProto) -> dict:
    t = value.type.tensor_type
    return {
        "name": value.name,
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
        "shape": [d.dim_param or d.dim_value for d in t.shape.dim],  # named when dynamic
    }


def write_manifest(entries: dict[str, dict], out_dir: Path) -> Path:
    path = out_dir / "manifest.json"
    path.write_text(json.dumps({"format": "headcast-models", "models": entries}, indent=2) + "\n")
    return path


def parity(dims: WarpDims, onnx_path: Path, inputs: tuple[torch.Tensor, ...]) -> float:
    """Max |torch − onnxruntime| over the outputs (fields in pixels, mouth in 0–255 levels,
    the white 0–1)."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = [t.numpy() for t in WarpGenerator(dims).eval()(*inputs)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True)})
    return max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
