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


def shipped_config(path: Path) -> Path:
    """`path` where it is a file; else, for `models/configs/NAME.json` or `NAME.json` run
    outside a checkout (headcast installed from a wheel), the shipped config of that name."""
    if path.is_file() or path.suffix != ".json":
        return path
    shipped = Path(__file__).parent / "configs" / path.name
    if shipped.is_file() and (len(path.parts) == 1 or path.parts[-3:-1] == ("models", "configs")):
        return shipped
    return path


def load_config(path: str | Path, **overrides: object) -> TrainConfig:
    """A TrainConfig from a JSON file of its fields, `overrides` (those not None) on top.
    Raises ValueError, saying what is wrong, for a file that is missing or not JSON, unknown
    keys, an unknown model, or counts that cannot train (each had been a traceback from deep
    in torch, or a run that did nothing and exited 0)."""
    from streamer.output_file import folder_problem

    path = shipped_config(Path(path))
    if not path.is_file():
        shipped = sorted(p.name for p in (Path(__file__).parent / "configs").glob("*.json"))
        raise ValueError(f"{path}: no such config file (shipped: models/configs/"
                         f"{', models/configs/'.join(shipped)})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON file of config fields ({exc})") from None
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("data", "val_identities"):
        raw[name] = tuple(raw.get(name, ()))
    if raw.get("model", "small") not in MODEL_SIZES:
        raise ValueError(f"{path}: model must be one of {sorted(MODEL_SIZES)}")
    for name in ("steps", "batch", "k"):
        if name in raw and not (isinstance(raw[name], int) and raw[name] >= 1):
            raise ValueError(f"{path}: {name} must be a whole number, at least 1, "
                             f"not {raw[name]!r}")
    if raw.get("minutes") is not None and not raw["minutes"] > 0:
        raise ValueError(f"{path}: minutes must be above 0, not {raw['minutes']!r}")
    if "out" in raw and (wrong := folder_problem(Path(raw["out"]))):
        raise ValueError(f"{path}: out: {wrong}")
    return TrainConfig(**raw)
