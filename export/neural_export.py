"""Export the neural model: the embedder (E with P) and the generator to ONNX, the weights
fine-tuning starts from to an .npz, each described in the runtime's manifest.

  embedder_<size>.onnx   shots (1, K, 3, S, S), shot_landmarks (1, K, 3, S, S), K dynamic
                         → embedding (1, D), psi (1, P)
  generator_<size>.onnx  landmarks (1, 3, S, S), warp (1, 3, S, S), valid (1, 1, S, S),
                         psi (1, P) → image, drawn (1, 3, S, S), mask (1, 1, S, S)
  neural_<size>.npz      E, G and D state dicts + dims: where `enroll --finetune` starts, and
                         what tests rebuild the shipped ONNX files from
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch

from export.onnx_export import OPSET, _describe
from models.networks import Discriminator, Embedder, Generator, NeuralDims
from models.weights import load_states

EMBEDDER_INPUTS = ["shots", "shot_landmarks"]
EMBEDDER_OUTPUTS = ["embedding", "psi"]
GENERATOR_INPUTS = ["landmarks", "warp", "valid", "psi"]
GENERATOR_OUTPUTS = ["image", "drawn", "mask"]


def load_checkpoint(path: Path) -> tuple[NeuralDims, dict[str, dict[str, torch.Tensor]]]:
    dims, states = load_states(path)
    return _dims(dims), states


def _dims(raw: dict) -> NeuralDims:
    return NeuralDims(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def build(dims: NeuralDims, states: dict[str, dict[str, torch.Tensor]]
          ) -> tuple[Embedder, Generator, Discriminator]:
    E, G = Embedder(dims), Generator(dims)
    D = Discriminator(dims, states["D"]["W.weight"].shape[0])
    E.load_state_dict(states["E"]), G.load_state_dict(states["G"]), D.load_state_dict(states["D"])
    return E.eval(), G.eval(), D.eval()


def example_generator_inputs(dims: NeuralDims) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    s = dims.size
    return (torch.rand(1, 3, s, s, generator=gen), torch.rand(1, 3, s, s, generator=gen) * 2 - 1,
            torch.ones(1, 1, s, s), torch.randn(1, dims.psi_dim, generator=gen) * 0.1)


def example_embedder_inputs(dims: NeuralDims, k: int = 2) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(1)
    s = dims.size
    return (torch.rand(1, k, 3, s, s, generator=gen) * 2 - 1,
            torch.rand(1, k, 3, s, s, generator=gen))


def generator_onnx(G: Generator) -> bytes:
    """The generator as ONNX bytes (also how a fine-tuned generator goes into a portrait)."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # InstanceNorm without running statistics normalizes by the input's own in eval too,
        # so the exporter's "train=True" is the model as it runs (`enroll --finetune`
        # printed this warning to users)
        warnings.filterwarnings("ignore", "ONNX export mode is set to TrainingMode.EVAL, but "
                                "operator 'instance_norm'", UserWarning)
        torch.onnx.export(G.eval(), example_generator_inputs(G.dims), buffer, dynamo=False,
                          opset_version=OPSET, input_names=GENERATOR_INPUTS,
                          output_names=GENERATOR_OUTPUTS)
    return buffer.getvalue()


def embedder_onnx(E: Embedder) -> bytes:
    buffer = io.BytesIO()
    axes = {"shots": {1: "k"}, "shot_landmarks": {1: "k"}}
    with torch.no_grad():
        torch.onnx.export(E.eval(), example_embedder_inputs(E.dims), buffer,
                          dynamo=False, opset_version=OPSET, input_names=EMBEDDER_INPUTS,
                          output_names=EMBEDDER_OUTPUTS, dynamic_axes=axes)
    return buffer.getvalue()


def _entry(path: Path, kind: str, dims: NeuralDims, **extra: object) -> dict:
    entry = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "kind": kind, "dims": asdict(dims), **extra}
    if path.suffix == ".onnx":
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        entry.update(opset=OPSET, inputs=[_describe(v) for v in proto.graph.input],
                     outputs=[_describe(v) for v in proto.graph.output])
    return entry


def export_neural(checkpoint: Path, out_dir: Path, name: str, notes: dict) -> dict[str, dict]:
    """Write the three files for one model size; returns their manifest entries."""
    dims, states = load_checkpoint(checkpoint)
    E, G, D = build(dims, states)
    files = {
        f"embedder_{name}": (out_dir / f"embedder_{name}.onnx", embedder_onnx(E), "embedder"),
        f"generator_{name}": (out_dir / f"generator_{name}.onnx", generator_onnx(G), "generator"),
    }
    entries = {}
    for key, (path, blob, kind) in files.items():
        path.write_bytes(blob)
        entries[key] = _entry(path, kind, dims, **notes)
    weights = out_dir / f"neural_{name}.npz"
    save_weights(weights, dims, {"E": E, "G": G, "D": D})
    entries[f"weights_{name}"] = _entry(weights, "weights", dims, **notes)
    return entries


def save_weights(path: Path, dims: NeuralDims, nets: dict[str, torch.nn.Module]) -> None:
    arrays = {f"{net}/{k}": v.detach().numpy()
              for net, module in nets.items() for k, v in module.state_dict().items()}
    arrays["dims"] = np.frombuffer(json.dumps(asdict(dims)).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_weights(path: Path) -> tuple[Embedder, Generator, Discriminator]:
    """The networks from an exported .npz (no pickle)."""
    dims, states = load_states(path)
    return build(_dims(dims), states)


def parity(E: Embedder, G: Generator, embedder_path: Path, generator_path: Path) -> float:
    """Max |torch − onnxruntime| over the embedder's and the generator's outputs."""
    import onnxruntime as ort

    worst = 0.0
    for module, path, inputs, names in (
        (E, embedder_path, example_embedder_inputs(E.dims, k=3), EMBEDDER_INPUTS),
        (G, generator_path, example_generator_inputs(G.dims), GENERATOR_INPUTS),
    ):
        with torch.no_grad():
            expected = [t.numpy() for t in module.eval()(*inputs)]
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        worst = max(worst, *(float(np.abs(g - e).max()) for g, e in zip(got, expected,
                                                                          strict=True)))
    return worst
