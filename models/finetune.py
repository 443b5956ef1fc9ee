"""Few-shot fine-tuning, the paper's second stage (Zakharov et al. 2019, sec. 3.3).

Given a portrait's K shots: ψ' starts at P·ê and becomes a free parameter, the discriminator's
projection w' starts at w0 + ê, and G, ψ' and D are trained on the K shots for a few hundred
steps. The generator's extra input is the runtime's warp onto each shot's landmarks, from the
shot the runtime would start from (streamer/references.py: the nearest other shot, when the
shots are frames of one camera; else the rendered shot, shots[0]); for K = 1, and as extra
samples for any K, the targets are random similarity transforms of the shots (with their
landmarks), so there is something to learn.

Anchors (not in the paper, whose G draws every pixel and is fine-tuned on as little): a shot
shows the mouth as it was, mostly closed, so fine-tuning on it alone teaches G that the warp
is right everywhere, and G forgets the mouth interiors meta-learning taught it. With one shot
(benchmarks.kshot, 8 clips) that gave the neural mouth back to the warp: 21.78 → 19.76 dB.
So each step also renders the rendered shot driven by the built-in motion template's most
open mouths (at a few expression gains, as `--expression-gain` would) and holds G's mouth
region there to what the meta-learned G drew on them (L1, as heavy as a real mouth). With
them, K = 1: mouth 21.26 dB, face 20.98 → 21.17 dB. On a painting the meta-learned mouth is
a real face's habit (the Mona Lisa's opens too little: amplitude ratio 0.55 with anchors,
0.79 without, driven by man_glasses_office), so `enroll --no-anchors` sets w_anchor to 0.
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
from models.data import WarpInputs, generator_arrays, mirrored, sample_tensors
from models.networks import Discriminator, Generator
from streamer import landmarks as L
from streamer.motion import MotionConfig, MotionTransfer
from streamer.neural import ShotCrop
from streamer.references import shot_distances
from streamer.template import load_template

ANCHOR_MIN_GAP = 0.05  # IOD: template frames open at least this much drive the anchors


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
    anchors: int = 12  # anchor targets (see above); 0: none
    anchor_gains: tuple[float, ...] = (1.0, 2.0, 3.0)  # expression gains of the anchors
    anchor_batch: int = 2  # anchors per step
    w_anchor: float = 4.0  # weight of the anchors' mouth L1
    # train on the image the runtime shows, G's mask held to its region (losses.held_to_region),
    # as the shipped G was half trained (TrainConfig.region_loss; models.average): its drawing
    # outside its region is never shown. False: G's own blend over the whole window
    region_loss: bool = True
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


def anchor_targets(shot: ShotCrop, count: int, gains: tuple[float, ...]) -> list[np.ndarray]:
    """(478, 3) crop landmarks of the shot driven by the motion template's open mouths (its
    frames open past ANCHOR_MIN_GAP: two moments of speech, 8 frames) at each gain, through
    the runtime's relative motion transfer calibrated on the template's first frame; `count`
    of them, spread evenly over openings and gains."""
    if count <= 0:
        return []
    track = load_template().landmarks
    opened = [lm for lm in track if L.mouth_gap(lm) > ANCHOR_MIN_GAP]
    out = []
    for gain in gains:
        motion = MotionTransfer(shot.landmarks, MotionConfig(expression_gain=gain))
        motion.calibrate(track[0])
        out += [motion.transfer(lm) for lm in opened]
    picks = np.linspace(0, len(out) - 1, min(count, len(out))).round().astype(int)
    return [out[i] for i in picks]


def shown(G: Generator, b: dict[str, torch.Tensor], psi: torch.Tensor,
          options: FinetuneOptions) -> torch.Tensor:
    """G on a batch → the image the runtime shows: G's mask held to its region when
    options.region_loss, else G's own blend."""
    out, drawn, mask = G(b["landmarks"], b["warp"], b["valid"], psi.expand(len(b["warp"]), -1))
    return losses.trained_image(out, drawn, mask, b, options.region_loss)


def anchor_set(G: Generator, shot: ShotCrop, psi: np.ndarray, options: FinetuneOptions,
               size: int = 256) -> list[dict[str, torch.Tensor]]:
    """Anchor samples: G's inputs for anchor_targets and, as the target, what G (the
    meta-learned one, before fine-tuning) draws there with ψ = P·ê."""
    warp = WarpInputs()
    samples = []
    psi_t = torch.from_numpy(psi.astype(np.float32))[None]
    for i, target in enumerate(anchor_targets(shot, options.anchors, options.anchor_gains)):
        arrays = generator_arrays(shot, target, warp, size)[1]
        if i % 2:  # mirrored, as the shots' samples are
            arrays = mirrored(arrays)
        sample = {k: torch.from_numpy(v) for k, v in arrays.items()}
        with torch.no_grad():
            sample["target"] = shown(G, {k: v[None] for k, v in sample.items()}, psi_t,
                                     options)[0]
        samples.append(sample)
    return samples


def _batch(samples: list[dict[str, torch.Tensor]], size: int, rng: np.random.Generator
           ) -> dict[str, torch.Tensor]:
    pick = rng.choice(len(samples), size=min(size, len(samples)), replace=False)
    return {k: torch.stack([samples[i][k] for i in pick]) for k in samples[0]}


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
    G.eval()
    anchors = anchor_set(G, shots[0], psi, options, G.dims.size) if options.w_anchor else []
    psi_p = torch.nn.Parameter(torch.from_numpy(psi.astype(np.float32))[None])
    w_p = torch.nn.Parameter(torch.from_numpy(embedding.astype(np.float32))[None])  # w' = w0+ê
    opt_g = torch.optim.Adam([*G.parameters(), psi_p], lr=options.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*D.parameters(), w_p], lr=options.lr_d, betas=(0.5, 0.999))
    rng = np.random.default_rng(options.seed)
    G.train(), D.train()
    for step in range(options.steps):
        b = _batch(samples, options.batch, rng)
        n = len(b["target"])
        out = shown(G, b, psi_p, options)
        loss, _ = losses.content_loss(out, b["target"], b["mouth"], options.w_mouth)
        w = w_p.expand(n, -1)
        fm, adv, _ = losses.generator_adversarial(D, out, b["target"], b["landmarks"], w=w)
        loss = loss + options.w_fm * fm + options.w_adv * adv
        if anchors:
            a = _batch(anchors, options.anchor_batch, rng)
            held = shown(G, a, psi_p, options)
            loss = loss + options.w_anchor * losses.region_l1(held, a["target"], a["mouth"])
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

