"""`headcast enroll --finetune STEPS`: fine-tune the shipped neural model on a portrait's shots
and store the result (ψ' and the generator as ONNX) in the portrait. Needs torch
(`pip install -e ".[train]"`); the runtime never imports this module otherwise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from export.neural_export import generator_onnx, load_weights
from models.finetune import FinetuneOptions, finetune
from streamer.errors import ModelFileError
from streamer.neural import ShotCrop
from streamer.portrait import Portrait
from streamer.renderer import RendererConfig, asset_dir, check_file, load_manifest_entry


def uses_references(portrait: Portrait) -> bool:
    """Whether the runtime warps from every shot (all are frames of one camera), so
    fine-tuning should too."""
    return len(portrait.shots) > 1 and len(portrait.references) == len(portrait.shots) - 1


def personalize(
    portrait: Portrait, shots: list[ShotCrop], options: FinetuneOptions, progress: bool = True,
    config: RendererConfig = RendererConfig(),
) -> Portrait:
    """portrait must carry its embedding (streamer.neural.with_embedding)."""
    from tqdm import tqdm

    if not portrait.psi.size:
        raise ModelFileError("the portrait has no embedding: the neural model is not installed")
    directory = asset_dir(config)
    entry = load_manifest_entry(directory, f"weights_{config.model}")
    path = check_file(directory, entry)
    _, G, D = load_weights(path)
    with tqdm(total=options.steps, unit="step", desc="fine-tune", disable=not progress) as bar:
        tuned, psi = finetune(G, D, shots, portrait.embedding, portrait.psi, options,
                              progress=lambda n: bar.update(n - bar.n),
                              nearest=uses_references(portrait))
    blob = generator_onnx(tuned)
    return replace(portrait, psi=psi.astype(np.float32), generator=np.frombuffer(blob, np.uint8))
