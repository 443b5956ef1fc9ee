"""Training-free generator: a dense thin-plate-spline warp of the portrait crop onto target
landmarks, plus a synthesized mouth interior wherever the target mouth opens wider than the
portrait's own. Written in torch so it exports to ONNX; the learned generator of a later
stage takes the same renderer slot. No I/O, no device choice: the network and its dimensions.

The network predicts *what* to draw at low resolution (a sampling field and an RGBA mouth
layer); resampling the full-resolution crop through the field is a fixed operation that the
runtime performs with OpenCV's remap (an order of magnitude faster than onnxruntime's
GridSample on CPU). `composite()` is that last step in torch, the reference for parity tests.

Inputs (per portrait inputs are computed once at enrollment and cached):
  ctrl         (N, 2) float32 target control points, normalized [-1, 1]     per frame
  tps          (N + 3, 2) float32 TPS weights, target → source, normalized  per frame
  mouth_poly   (M, 2) float32 target inner-lip polygon, normalized          per frame
  mouth_frame  (8,) float32: upper-lip point (2), opening axis / opening (2),
               across axis / half-width (2), teeth strength, layer strength  per frame
  mouth_box    (4,) float32 x0, y0, x1, y1 of the mouth layer, normalized   per frame
  colors       (3, 3) float32 0–1 BGR: cavity, deep cavity, teeth           per portrait
Outputs:
  flow         (F, F, 2) float32 displacement (source − target) of each field cell, in crop
               pixels; F = S / field_div. Upsampled and added to the pixel grid, it is the
               sampling map (OpenCV's remap convention)
  mouth        (MH, MW, 4) float32 mouth layer over mouth_box: BGR 0–255 and coverage 0–1
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EDGE_FADE = 0.16  # width of the band along the crop's edge where the warp fades out, normalized


@dataclass(frozen=True)
class WarpDims:
    crop_size: int = 512  # S: rendered crop side in pixels
    field_div: int = 4  # the field and the mouth layer are evaluated at S / field_div
    num_ctrl: int = 214  # N: control points (mesh subset + hair ring + crop border)
    num_mouth: int = 20  # M: inner-lip polygon points
    mouth_grid: tuple[int, int] = (48, 96)  # (MH, MW): mouth layer cells over its box

    @property
    def field_size(self) -> int:
        return self.crop_size // self.field_div


def _grid(size: int) -> torch.Tensor:
    """(size*size, 2) pixel-centre coordinates in [-1, 1], x fastest (align_corners=False)."""
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """Thin-plate radial basis U = r² log r² (0 at r = 0)."""
    return r2 * torch.log(r2.clamp_min(1e-12))


def point_in_polygon(points: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Even-odd rule. points: (G, 2), poly: (M, 2) closed implicitly → (G,) float 0/1."""
    b = torch.roll(poly, shifts=-1, dims=0)
    px, py = points[:, :1], points[:, 1:]
    ax, ay = poly[None, :, 0], poly[None, :, 1]
    bx, by = b[None, :, 0], b[None, :, 1]
    straddles = (ay > py) != (by > py)
    slope = (bx - ax) / torch.where((by - ay).abs() < 1e-9, torch.full_like(ay, 1e-9), by - ay)
    crossings = (straddles & (px < ax + (py - ay) * slope)).float().sum(dim=1)
    return 0.5 - 0.5 * torch.cos(torch.pi * crossings)


class WarpGenerator(nn.Module):
    def __init__(self, dims: WarpDims = WarpDims()) -> None:
        super().__init__()
        self.dims = dims
        self.register_buffer("grid", _grid(dims.field_size), persistent=False)
        # Displacement fades to zero near the crop's edge: the background there stays exactly
        # still and the crop pastes back without a seam.
        edge = 1.0 - self.grid.abs().amax(dim=1, keepdim=True)  # 0 at the edge, 1 at the centre
        edge = edge - 4.0 / dims.field_size  # the two outermost cells do not move at all
        self.register_buffer("hold", (edge / EDGE_FADE).clamp(0.0, 1.0), persistent=False)
        mh, mw = dims.mouth_grid
        uy, ux = torch.meshgrid(
            (torch.arange(mh) + 0.5) / mh, (torch.arange(mw) + 0.5) / mw, indexing="ij"
        )
        self.register_buffer(
            "unit_grid", torch.stack([ux.reshape(-1), uy.reshape(-1)], 1), persistent=False
        )

    def forward(
        self,
        ctrl: torch.Tensor,
        tps: torch.Tensor,
        mouth_poly: torch.Tensor,
        mouth_frame: torch.Tensor,
        mouth_box: torch.Tensor,
        colors: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, s = self.dims.field_size, self.dims.crop_size
        g = self.grid
        r2 = (g * g).sum(1, keepdim=True) + (ctrl * ctrl).sum(1)[None, :] - 2.0 * g @ ctrl.T
        source = tps_kernel(r2.clamp_min(0.0)) @ tps[:-3] + tps[-3:-2] + g @ tps[-2:]
        flow = ((source - g) * self.hold * (0.5 * s)).reshape(n, n, 2)
        m = mouth_box[0:2] + self.unit_grid * (mouth_box[2:4] - mouth_box[0:2])
        mh, mw = self.dims.mouth_grid
        inside = point_in_polygon(m, mouth_poly).reshape(1, 1, mh, mw)
        # A 3×3 box filter anti-aliases the lip edge (the layer is ~1 cell per crop pixel).
        inside = F.avg_pool2d(inside, 3, stride=1, padding=1, count_include_pad=False)
        coverage = inside.reshape(-1, 1) * mouth_frame[7]
        color = self._mouth_color(m, colors, mouth_frame) * 255.0
        mouth = torch.cat([color, coverage], dim=1).reshape(mh, mw, 4)
        return flow, mouth

    def _mouth_color(
        self, points: torch.Tensor, colors: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        """Dark cavity, darker towards its centre, with a band of upper teeth under the lip.
        points (G, 2) normalized → (G, 3) BGR 0–1."""
        rel = points - frame[0:2]
        v = rel @ frame[2:4]  # 0 at the upper lip, 1 at the lower lip
        u = rel @ frame[4:6]  # -1 .. 1 from corner to corner
        depth = (1.0 - u * u).clamp(0.0, 1.0) * (1.0 - (2.0 * v - 1.0) ** 2).clamp(0.0, 1.0)
        cavity = colors[0][None, :] * (1.0 - depth[:, None]) + colors[1][None, :] * depth[:, None]
        band = torch.sigmoid((0.38 - v) * 14.0) * torch.sigmoid((0.78 - u.abs()) * 10.0)
        teeth = band * frame[6] * (1.0 - 0.35 * u.abs())
        return cavity * (1.0 - teeth[:, None]) + colors[2][None, :] * teeth[:, None]


def composite(
    crop: torch.Tensor,
    src_mouth: torch.Tensor,
    flow: torch.Tensor,
    mouth: torch.Tensor,
    mouth_box: torch.Tensor,
) -> torch.Tensor:
    """Reference of the runtime's last step (streamer/renderer.py does it with OpenCV).

    crop (S, S, 3) uint8, src_mouth (S, S) uint8, flow (F, F, 2), mouth (MH, MW, 4),
    mouth_box (4,) normalized → (S, S, 3) uint8."""
    s = crop.shape[0]
    up = F.interpolate(
        flow.permute(2, 0, 1)[None], size=(s, s), mode="bilinear", align_corners=False
    )[0].permute(1, 2, 0)
    grid = _grid(s).reshape(s, s, 2) + up / (0.5 * s)
    image = torch.cat([crop.float(), src_mouth.float()[..., None]], dim=2)
    warped = F.grid_sample(
        image.permute(2, 0, 1)[None],
        grid[None],
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[0].permute(1, 2, 0)
    # The mouth layer, resampled onto every crop pixel (zero outside its box).
    pix = _grid(s).reshape(s, s, 2)
    local = (pix - mouth_box[0:2]) / (mouth_box[2:4] - mouth_box[0:2]) * 2.0 - 1.0
    layer = F.grid_sample(
        mouth.permute(2, 0, 1)[None],
        local[None],
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[0].permute(1, 2, 0)
    inside = ((local.abs() <= 1.0).all(dim=2, keepdim=True)).float()
    alpha = ((layer[..., 3:] - warped[..., 3:] / 255.0) * inside).clamp(0.0, 1.0)
    out = warped[..., :3] + alpha * (layer[..., :3] - warped[..., :3])
    return (out + 0.5).clamp(0.0, 255.0).to(torch.uint8)
