"""Model sizes and training configurations as dataclasses; a training run reads one JSON file
whose keys are TrainConfig's fields (see models/configs/*.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from models.networks import NeuralDims

MODEL_SIZES: dict[str, NeuralDims] = {
    # For CI smoke tests: trains a few steps in seconds.
    "tiny": NeuralDims(enc=(8, 16, 16, 16), res_blocks=1, dec=(16, 16, 8, 8), embed_dim=32,
                       embed_size=64, embed_ch=(8, 16, 16, 32), disc_ch=(8, 16, 16, 32)),
    # Shipped: ≈1.4 GFLOP per 256² frame, renders live on a 2-core CPU.
    "small": NeuralDims(),
    # For GPUs and VoxCeleb2-scale data: ≈19 GFLOP per 256² frame, 31 M generator parameters.
    "large": NeuralDims(enc=(64, 128, 256, 512), res_blocks=6, dec=(256, 128, 64, 32),
                        embed_dim=512, embed_size=256, embed_ch=(64, 128, 256, 512, 512, 512),
                        disc_ch=(64, 128, 256, 512, 512, 512)),
}


@dataclass(frozen=True)
class TrainConfig:
    model: str = "small"  # key of MODEL_SIZES
    data: tuple[str, ...] = ()  # folders written by models.prepare
    val_identities: tuple[str, ...] = ()  # held out of training (split by identity)
    out: str = "runs/small"  # checkpoints, metrics.jsonl, sample grids
    steps: int = 2000  # optimizer steps (per process)
    batch: int = 4  # episodes per step per process
    k: int = 8  # frames per episode given to the embedder
    # fraction of episodes warped from the shot nearest the target (models.data.Episodes)
    nearest_source: float = 0.0
    init: str = ""  # exported weights (.npz, export.neural_export) to start from; "" = random
    # train on the image the runtime shows: G's mask held to its region (losses.held_to_region)
    region_loss: bool = False
    lr_g: float = 2e-4  # E and G (Adam)
    lr_d: float = 4e-4  # D (two time-scale update rule)
    w_mouth: float = 4.0  # extra L1 weight on the mouth box
    w_fm: float = 1.0  # discriminator feature matching
    w_adv: float = 0.1  # hinge adversarial loss of G
    w_mch: float = 10.0  # embedding match ‖W_i − ê_i‖₁
    adv_start: int = 200  # steps of content loss only before D joins (a stable start)
    workers: int = 1  # DataLoader worker processes per training process
    seed: int = 0
    log_every: int = 10
    sample_every: int = 200  # PNG grid of inputs, outputs, masks
    val_every: int = 200
    val_episodes: int = 16
    checkpoint_every: int = 200
    threads: int = 0  # torch CPU threads; 0: torch's default
    minutes: float = 0.0  # stop (validated and saved) after this much training; 0 = no limit
    # decay of an exponential moving average of E and G's weights (validated, kept in best.pt
    # and exported in place of the raw ones); 0 = off
    ema: float = 0.0
    extra: dict = field(default_factory=dict)  # free-form notes copied into the checkpoint

    @property
    def dims(self) -> NeuralDims:
        return MODEL_SIZES[self.model]


def load_config(path: str | Path, **overrides: object) -> TrainConfig:
    raw = json.loads(Path(path).read_text())
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("data", "val_identities"):
        raw[name] = tuple(raw.get(name, ()))
    if raw.get("model", "small") not in MODEL_SIZES:
        raise ValueError(f"{path}: model must be one of {sorted(MODEL_SIZES)}")
    return TrainConfig(**raw)
