"""Few-shot fine-tuning, the paper's second stage (Zakharov et al. 2019, sec. 3.3).

Given a portrait's K shots: ψ' starts at P·ê and becomes a free parameter, the discriminator's
projection w' starts at w0 + ê, and G, ψ' and D are trained on the K shots for a few hundred
steps. The generator's extra input is the runtime's warp onto each shot's landmarks, from the
shot the runtime would start from (streamer/references.py: the nearest other shot, when the
shots are frames of one camera; else the rendered shot, shots[0]); for K = 1, and as extra
samples for any K, the targets are random similarity transforms of the shots (with their
landmarks), so there is something to learn.
The result — ψ' and the fine-tuned generator as ONNX — goes into the portrait's file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from models import losses
from models.data import WarpInputs, sample_tensors
from models.networks import Discriminator, Generator
from streamer.neural import ShotCrop
from streamer.references import shot_distances


@dataclass(frozen=True)
class FinetuneOptions:
    steps: int = 150  # optimizer steps
    batch: int = 4
    lr_g: float = 5e-5  # G and ψ' (the paper's fine-tuning rate)
    lr_d: float = 2e-4
    augmented: int = 16  # transformed copies of the shots added to the targets
    w_mouth: float = 4.0
    w_fm: float = 1.0
    w_adv: float = 0.1
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0: torch's default


def augment(shot: ShotCrop, rng: np.random.Generator) -> ShotCrop:
    """A random small similarity transform (scale ±6%, rotation ±6°, shift ±4%) of a shot and
    its landmarks, the background replicated at the edge."""
    s = shot.crop.shape[0]
    angle = rng.uniform(-6, 6)
    scale = rng.uniform(0.94, 1.06)
    shift = rng.uniform(-0.04, 0.04, size=2) * s
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
    m[:, 2] += shift
    crop = cv2.warpAffine(shot.crop, m, (s, s), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    lm = shot.landmarks.copy()
    # cv2's matrix maps integer pixel positions; landmarks have pixel centres at i + 0.5.
    xy = lm[:, :2] - 0.5
    lm[:, :2] = xy @ m[:, :2].T + m[:, 2] + 0.5
    lm[:, 2] *= scale
    return ShotCrop(crop, lm.astype(np.float32))


def training_set(shots: list[ShotCrop], options: FinetuneOptions, size: int = 256,
                 nearest: bool = False) -> list[dict[str, torch.Tensor]]:
    """Fixed samples at the network's side: every shot as a target (K > 1) plus `augmented`
    transformed shots. shots: crops at streamer.neural.SHOT_CROP, shots[0] the rendered one.
    nearest: warp each target from its nearest other shot (the runtime's references) instead
    of shots[0]."""
    rng = np.random.default_rng(options.seed)
    warp = WarpInputs()
    pairs = [(i, shot) for i, shot in enumerate(shots) if i > 0]  # (origin, target)
    for _ in range(options.augmented):
        j = int(rng.integers(len(shots)))
        pairs.append((-1, augment(shots[j], rng)))  # a moved copy: any shot may start it
    landmarks = np.stack([s.landmarks for s in shots])
    samples = []
    for i, (origin, target) in enumerate(pairs):
        source = 0
        if nearest:
            dist = shot_distances(target.landmarks, landmarks)
            if origin >= 0:
                dist[origin] = np.inf
            source = int(np.argmin(dist))
        sample = sample_tensors([shots[source]], target, warp, size, flip=bool(i % 2))
        del sample["shots"], sample["shot_landmarks"]  # E is not trained here
        samples.append(sample)
    return samples


def finetune(
    G: Generator,
    D: Discriminator,
    shots: list[ShotCrop],
    embedding: np.ndarray,
    psi: np.ndarray,
    options: FinetuneOptions = FinetuneOptions(),
    progress: Callable[[int], None] | None = None,
    nearest: bool = False,
) -> tuple[Generator, np.ndarray]:
    """Fine-tune copies of G and D on the shots → (fine-tuned G in eval mode, ψ' (P,)).
    nearest: as for training_set."""
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    samples = training_set(shots, options, G.dims.size, nearest)
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    psi_p = torch.nn.Parameter(torch.from_numpy(psi.astype(np.float32))[None])
    w_p = torch.nn.Parameter(torch.from_numpy(embedding.astype(np.float32))[None])  # w' = w0+ê
    opt_g = torch.optim.Adam([*G.parameters(), psi_p], lr=options.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*D.parameters(), w_p], lr=options.lr_d, betas=(0.5, 0.999))
    rng = np.random.default_rng(options.seed)
    G.train(), D.train()
    for step in range(options.steps):
        pick = rng.choice(len(samples), size=min(options.batch, len(samples)), replace=False)
        b = {k: torch.stack([samples[i][k] for i in pick]) for k in samples[0]}
        n = len(pick)
        out, _, _ = G(b["landmarks"], b["warp"], b["valid"], psi_p.expand(n, -1))
        loss, _ = losses.content_loss(out, b["target"], b["mouth"], options.w_mouth)
        w = w_p.expand(n, -1)
        fm, adv, _ = losses.generator_adversarial(D, out, b["target"], b["landmarks"], w=w)
        loss = loss + options.w_fm * fm + options.w_adv * adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        real_score, fake_score, _ = losses.discriminator_scores(
            D, b["target"], out.detach(), b["landmarks"], w=w)
        d_loss = losses.hinge_d(real_score, fake_score)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if progress is not None:
            progress(step + 1)
    return G.eval(), psi_p.detach()[0].numpy()

