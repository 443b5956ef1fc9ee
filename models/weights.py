"""The few-shot model's weight files, read alike: a models.train checkpoint (.pt, torch's
weights-only format) or exported weights (.npz, export.neural_export.save_weights; no pickle).
Export, the trainer's `init` and models.average all read through here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

NETS = ("E", "G", "D")  # embedder, generator, discriminator


def load_states(path: Path | str) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """A .pt checkpoint or an exported .npz → (dims as a dict, {net: state dict}); of a
    checkpoint with moving averages (E_ema, G_ema), the averages."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            dims = json.loads(bytes(data["dims"]).decode())
            states: dict[str, dict[str, torch.Tensor]] = {net: {} for net in NETS}
            for key in data.files:
                if key != "dims":
                    net, name = key.split("/", 1)
                    states[net][name] = torch.from_numpy(data[key].copy())
        return dims, states
    state = torch.load(path, map_location="cpu", weights_only=True)
    # a run that kept moving averages of E and G (TrainConfig.ema) is used through them
    return json.loads(json.dumps(state["dims"])), {net: state.get(f"{net}_ema", state[net])
                                                   for net in NETS}
