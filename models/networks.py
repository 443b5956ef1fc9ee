"""The few-shot talking-head networks of Zakharov et al. 2019 ("Few-Shot Adversarial Learning
of Realistic Neural Talking Head Models"), sized for a CPU runtime. No I/O, no device choice:
the networks and the dataclass of their dimensions.

- Embedder E(x, y) → ê: a frame and its landmark image → identity embedding (sec. 3.2);
  K frames are averaged. `project` is the paper's matrix P: ψ = P·ê, the generator's AdaIN
  parameters, computed once per portrait.
- Generator G(y_t, warp, valid; ψ): unlike the paper's G, which draws the whole face from
  landmarks, ours also sees the training-free renderer's warped portrait and where it is
  the portrait's own texture, and predicts an image *and* a blend mask. Where the warp is
  right the mask keeps its exact pixels; where it cannot be (mouth interior, teeth, eyes,
  uncovered cheek, seams) the network draws.
- Discriminator D(x, y, i) with the projection head r = V(x, y)·(W_i + w0) + b (sec. 3.2);
  W_i is a per-video embedding in meta-learning and ê in fine-tuning.

Tensors are NCHW float32, images in [-1, 1], landmark images in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


@dataclass(frozen=True)
class NeuralDims:
    size: int = 256  # rendered crop side
    enc: tuple[int, ...] = (32, 64, 96, 128)  # generator encoder channels at S/2 … S/16
    res_blocks: int = 3  # AdaIN residual blocks at the bottleneck
    dec: tuple[int, ...] = (96, 64, 32, 16)  # decoder channels, S/16 … S/2 (before upsampling)
    embed_dim: int = 256  # ê
    embed_size: int = 128  # E sees frames resized to this side
    embed_ch: tuple[int, ...] = (32, 64, 128, 256, 256)  # E channels, each halves the side
    disc_ch: tuple[int, ...] = (32, 64, 128, 256, 256)  # D channels, each halves the side
    mask_bias: float = -3.0  # initial blend-mask logit: start by trusting the warp

    @property
    def psi_dim(self) -> int:
        """Length of ψ: (γ, β) for every AdaIN layer."""
        return 2 * (2 * self.res_blocks * self.enc[-1] + sum(self.dec))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017): x (N, C, H, W) normalised per
    channel, then scaled by 1 + γ and shifted by β, (N, C) each."""
    x = F.instance_norm(x, eps=1e-5)
    return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


class Embedder(nn.Module):
    """E: K frames and their landmark images → ê averaged over K, and ψ = P·ê."""

    def __init__(self, dims: NeuralDims) -> None:
        super().__init__()
        self.dims = dims
        chans = (6, *dims.embed_ch)
        self.convs = nn.ModuleList(_conv(a, b, 2) for a, b in zip(chans, chans[1:], strict=False))
        self.out = nn.Linear(dims.embed_ch[-1], dims.embed_dim)
        # P of the paper: ê → ψ. Lives here so the per-portrait graph computes ψ once.
        self.project = nn.Linear(dims.embed_dim, dims.psi_dim)
        nn.init.normal_(self.project.weight, std=0.01)
        nn.init.zeros_(self.project.bias)

    def frames(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One embedding per frame: x, y (N, 3, S, S) → (N, D)."""
        h = torch.cat([x, y], dim=1)
        factor = self.dims.size // self.dims.embed_size  # static, so it exports with any K
        if factor > 1:
            h = F.avg_pool2d(h, factor)
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        return self.out(h.sum(dim=(2, 3)) / h.shape[-1])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y: (B, K, 3, S, S) → (ê (B, D) averaged over K, ψ (B, psi_dim))."""
        b = x.shape[0]
        e = self.frames(x.flatten(0, 1), y.flatten(0, 1))
        e = e.view(b, -1, self.dims.embed_dim).mean(dim=1)
        return e, self.project(e)


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(ch, ch), _conv(ch, ch)

    def forward(self, x: torch.Tensor, p: list[torch.Tensor]) -> torch.Tensor:
        h = self.conv1(F.relu(adain(x, p[0], p[1])))
        h = self.conv2(F.relu(adain(h, p[2], p[3])))
        return x + h


class Generator(nn.Module):
    """G: (y (N, 3, S, S) landmark image, warp (N, 3, S, S), valid (N, 1, S, S), ψ (N, P))
    → (image (N, 3, S, S) in [-1, 1], mask (N, 1, S, S) 0–1, out = mask·draw + (1−mask)·warp).

    U-shaped: a strided encoder of the warp and landmarks, AdaIN residual blocks at S/16, a
    decoder that convolves, upsamples and adds the encoder's feature of that scale, and a
    full-resolution head that also sees the input (sharp mask edges)."""

    def __init__(self, dims: NeuralDims) -> None:
        super().__init__()
        self.dims = dims
        chans = (7, *dims.enc)
        self.enc = nn.ModuleList(_conv(a, b, 2) for a, b in zip(chans, chans[1:], strict=False))
        self.res = nn.ModuleList(_ResBlock(dims.enc[-1]) for _ in range(dims.res_blocks))
        dec_in = (dims.enc[-1], *dims.dec[:-1])
        self.dec = nn.ModuleList(_conv(a, b) for a, b in zip(dec_in, dims.dec, strict=True))
        self.head = _conv(dims.dec[-1] + 7, 4)
        with torch.no_grad():
            self.head.bias[3] = dims.mask_bias

    def split_psi(self, psi: torch.Tensor) -> list[torch.Tensor]:
        """ψ (N, P) → [γ, β, …] per AdaIN layer, in the order forward() uses them."""
        widths: list[int] = []
        for _ in range(2 * self.dims.res_blocks):
            widths += [self.dims.enc[-1]] * 2
        for c in self.dims.dec:
            widths += [c, c]
        return list(torch.split(psi, widths, dim=1))

    def forward(
        self, y: torch.Tensor, warp: torch.Tensor, valid: torch.Tensor, psi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ (out, drawn, mask): the blended image, the drawn image and the blend mask."""
        p = self.split_psi(psi)
        x = torch.cat([warp, valid, y], dim=1)
        skips = []
        h = x
        for conv in self.enc:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
        i = 0
        for block in self.res:
            h = block(h, p[i : i + 4])
            i += 4
        for level, conv in enumerate(self.dec):
            h = F.relu(adain(conv(h), p[i], p[i + 1]))
            i += 2
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            skip = len(skips) - 2 - level
            if skip >= 0:
                h = h + skips[skip]
        h = self.head(torch.cat([h, x], dim=1))
        drawn = torch.tanh(h[:, :3])
        mask = torch.sigmoid(h[:, 3:4])
        return mask * drawn + (1.0 - mask) * warp, drawn, mask


class Discriminator(nn.Module):
    """D: (x (N, 3, S, S), y (N, 3, S, S), video i or w) → (realism (N,), features for
    matching, the embedding used).

    The projection of sec. 3.2 is r = V(x, y)·(w + w0) + b with w = W_i, the video's row of
    the embedding matrix, in meta-learning (pass `video`), and w = ê in fine-tuning (pass `w`)."""

    def __init__(self, dims: NeuralDims, num_videos: int) -> None:
        super().__init__()
        self.dims = dims
        chans = (6, *dims.disc_ch)
        pairs = zip(chans, chans[1:], strict=False)
        self.convs = nn.ModuleList(spectral_norm(_conv(a, b, 2)) for a, b in pairs)
        self.to_embed = spectral_norm(nn.Linear(dims.disc_ch[-1], dims.embed_dim))
        self.w0 = nn.Parameter(torch.zeros(dims.embed_dim))
        self.b = nn.Parameter(torch.zeros(1))
        self.W = nn.Embedding(max(num_videos, 1), dims.embed_dim)
        nn.init.normal_(self.W.weight, std=0.02)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, video: torch.Tensor | None = None,
        w: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        if w is None:
            assert video is not None, "pass the video index or the embedding"
            w = self.W(video)
        h = torch.cat([x, y], dim=1)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            features.append(h)
        v = self.to_embed(h.sum(dim=(2, 3)) / (h.shape[-1] * h.shape[-2]))
        return (v * (w + self.w0)).sum(dim=1) + self.b, features, w
