"""Training losses.

Deviation from Zakharov et al. 2019, documented: their content loss compares VGG19 (ImageNet)
and VGGFace features. No pretrained weights can be downloaded on our machines, so the content
loss here is L1 + multi-scale SSIM (Wang et al. 2003) + the discriminator's feature matching
(Wang et al. 2018, pix2pixHD), with an extra L1 weight on the mouth, where the training-free
warp is weakest and where people look. Adversarial: hinge loss (sec. 3.2); embedding match
L_MCH = ‖W_i − ê_i‖₁ (sec. 3.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _ssim_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM luminance·contrast·structure and contrast·structure maps for images in
    [0, 1], (N, C, H, W), Gaussian window 11, σ 1.5."""
    c = a.shape[1]
    g = _gauss().to(a)
    win = (g[:, None] * g[None, :]).expand(c, 1, 11, 11).contiguous()
    blur = lambda t: F.conv2d(t, win, groups=c)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ms_ssim(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale SSIM of images in [0, 1], (N, C, H, W) → (N,); equal weights per scale.
    Always in float32, also inside a bf16 autocast region: the variances are differences of
    near-equal blurred moments, which bf16's 8-bit mantissa turns negative (then NaN)."""
    with torch.autocast(a.device.type, enabled=False):
        return _ms_ssim(a.float(), b.float(), scales)


def _ms_ssim(a: torch.Tensor, b: torch.Tensor, scales: int) -> torch.Tensor:
    values = []
    for s in range(scales):
        full, cs = _ssim_terms(a, b)
        values.append((full if s == scales - 1 else cs).clamp_min(1e-4))
        if s < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return torch.stack(values, dim=0).log().mean(dim=0).exp()


def region_l1(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean |fake − real| over a region: fake, real (N, 3, S, S); region (N, 1, S, S) 0/1."""
    return ((fake - real).abs() * region).sum() / (3.0 * region.sum().clamp_min(1.0))


def content_loss(
    fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor, mouth_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """fake, real (N, 3, S, S) in [-1, 1]; region (N, 1, S, S) 1 on the mouth."""
    l1 = (fake - real).abs().mean()
    l1_mouth = region_l1(fake, real, region)
    ssim = ms_ssim((fake + 1) / 2, (real + 1) / 2).mean()
    loss = l1 + mouth_weight * l1_mouth + (1.0 - ssim)
    return loss, {"l1": l1.item(), "l1_mouth": l1_mouth.item(), "ms_ssim": ssim.item()}


def held_to_region(warp: torch.Tensor, drawn: torch.Tensor, mask: torch.Tensor,
                   region: torch.Tensor) -> torch.Tensor:
    """The image the runtime shows when G's mask is held to its region
    (streamer.neural.generator_region): warp + region·mask·(drawn − warp). Training on it
    spends G's capacity where the runtime lets it draw: the mouth and the warp's holes."""
    return warp + region * mask * (drawn - warp)


def trained_image(out: torch.Tensor, drawn: torch.Tensor, mask: torch.Tensor,
                  batch: dict[str, torch.Tensor], held: bool) -> torch.Tensor:
    """What G is trained on: its own blend `out`, or (held) its drawing held to the batch's
    region over the batch's warp."""
    return held_to_region(batch["warp"], drawn, mask, batch["region"]) if held else out


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    return sum((f - r.detach()).abs().mean() for f, r in zip(fake, real, strict=True)) / len(fake)


def hinge_d(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_score).mean() + F.relu(1.0 + fake_score).mean()


def hinge_g(fake_score: torch.Tensor) -> torch.Tensor:
    return -fake_score.mean()


def embedding_match(w_i: torch.Tensor, e_hat: torch.Tensor) -> torch.Tensor:
    """L_MCH: pulls the per-video discriminator embedding and the embedder's output together."""
    return (w_i - e_hat).abs().mean()


def generator_adversarial(
    D: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor, landmarks: torch.Tensor,
    **identity: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G's adversarial terms: feature matching of D's features of the fake to those of the
    real image (no gradient through the real pass) and the hinge loss of the fake's score.
    identity: video= (meta-learning) or w= (fine-tuning) → (fm, adv, the embedding D used)."""
    fake_score, fake_feats, w = D(fake, landmarks, **identity)
    with torch.no_grad():
        _, real_feats, _ = D(real, landmarks, **identity)
    fm = feature_matching([f.float() for f in fake_feats], [f.float() for f in real_feats])
    return fm, hinge_g(fake_score.float()), w


def discriminator_scores(
    D: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, landmarks: torch.Tensor,
    **identity: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D on real and fake images in one forward (identity as for generator_adversarial, one
    row per image pair) → (real scores, fake scores, the embedding D used for them)."""
    doubled = {k: torch.cat([v, v]) for k, v in identity.items()}
    scores, _, w = D(torch.cat([real, fake]), torch.cat([landmarks, landmarks]), **doubled)
    real_score, fake_score = scores.float().split(len(fake))
    return real_score, fake_score, w[: len(fake)]
