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
  mouth_frame  (10,) float32: upper-lip point (2), opening axis / opening (2),
               across axis / half-width (2), teeth strength, layer strength,
               teeth depth as a fraction of the opening, tongue strength    per frame
  mouth_box    (4,) float32 x0, y0, x1, y1 of the mouth layer, normalized   per frame
  fine_boxes   (3, 4) float32 boxes (right eye, left eye, mouth) where the flow is also
               evaluated finely: lids and lips move a lot over a few pixels  per frame
  colors       (4, 3) float32 0–1 BGR: cavity, deep cavity, teeth, tongue   per portrait
  lids         (2, 2, 2, L, 2) float32 lid lines, normalized: per eye (right, left), the
               target's then the portrait's, each the upper then the lower lid from the
               outer corner to the inner                                      per frame
  irises       (2, 2, 2) float32 iris centres, normalized: per eye, target then portrait
                                                                              per frame
Outputs:
  flow         (F, F, 2) float32 displacement (source − target) of each field cell, in crop
               pixels; F = S / field_div. Upsampled and added to the pixel grid, it is the
               sampling map (OpenCV's remap convention)
  mouth        (MH, MW, 4) float32 mouth layer over mouth_box: BGR 0–255 and coverage 0–1
  fine_flow    (3, FH, FW, 2) float32 the flow over each fine box, crop pixels

Lids are mapped exactly (see WarpGenerator._slide_lids): a spline squeezes the eye between
closing lids, so a shut eye kept a squashed iris that people (and face trackers) still read
as open. Now a closing upper lid covers the eye as a lid does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GAZE_MAX = 0.2  # most sideways gaze shift, in eye widths
LID_SKIN = 0.5  # lid skin restretched above the upper lid, in eye widths (half that below)
EDGE_FADE = 0.16  # width of the band along the crop's edge where the warp fades out, normalized
TONGUE_TOP = 0.7  # the tongue's top above the lower lip at the centre, × the opening
TONGUE_CREASE = 0.04  # the dark line between the tongue and the lower lip, × the opening


@dataclass(frozen=True)
class WarpDims:
    crop_size: int = 512  # S: rendered crop side in pixels
    field_div: int = 4  # the field and the mouth layer are evaluated at S / field_div
    num_ctrl: int = 156  # N: control points (mesh subset + hair ring + crop border)
    num_mouth: int = 20  # M: inner-lip polygon points
    mouth_grid: tuple[int, int] = (48, 96)  # (MH, MW): mouth layer cells over its box
    fine_grid: tuple[int, int] = (32, 48)  # (FH, FW): fine flow cells over each fine box
    num_lid: int = 9  # L: points per lid line, corners included

    @property
    def field_size(self) -> int:
        return self.crop_size // self.field_div


def _grid(size: int) -> torch.Tensor:
    """(size*size, 2) pixel-centre coordinates in [-1, 1], x fastest (align_corners=False)."""
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _unit_grid(rows: int, cols: int) -> torch.Tensor:
    """(rows*cols, 2) cell centres in [0, 1]², x fastest."""
    uy, ux = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols,
                            indexing="ij")
    return torch.stack([ux.reshape(-1), uy.reshape(-1)], 1)


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """Thin-plate radial basis U = r² log r² (0 at r = 0)."""
    return r2 * torch.log(r2.clamp_min(1e-12))


@dataclass(frozen=True)
class _EyeFrame:
    """An eye's frame: origin at the outer corner, u towards the inner corner, v across
    towards the lower lid; its lid lines in (u, v). Tensors batched over the two eyes."""

    origin: torch.Tensor  # (2, 1, 2)
    axis: torch.Tensor  # (2, 1, 2) unit
    normal: torch.Tensor  # (2, 1, 2) unit
    width: torch.Tensor  # (2, 1) corner to corner
    u_upper: torch.Tensor  # (2, L)
    v_upper: torch.Tensor
    u_lower: torch.Tensor
    v_lower: torch.Tensor

    def local(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _local(p, self.origin, self.axis, self.normal)

    def point(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.origin + u[..., None] * self.axis + v[..., None] * self.normal


def _eye_frame(lines: torch.Tensor) -> _EyeFrame:
    """lines (2, 2, L, 2): per eye the upper, then the lower lid, outer corner first."""
    upper, lower = lines[:, 0], lines[:, 1]
    origin = upper[:, :1]
    span = upper[:, -1:] - origin
    width = span.norm(dim=2).clamp_min(1e-6)
    axis = span / width[..., None]
    normal = torch.stack([-axis[..., 1], axis[..., 0]], dim=2)
    below = ((lower.mean(1, keepdim=True) - upper.mean(1, keepdim=True)) * normal).sum(2)
    normal = normal * torch.where(below < 0.0, -1.0, 1.0)[..., None]
    return _EyeFrame(origin, axis, normal, width, *_local(upper, origin, axis, normal),
                     *_local(lower, origin, axis, normal))


def _local(p: torch.Tensor, origin: torch.Tensor, axis: torch.Tensor, normal: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) of points p (2, G, 2) in the eye frames: along the axis, along the normal."""
    d = p - origin
    return (d * axis).sum(2), (d * normal).sum(2)


def _polyline_at(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Piecewise-linear y(x) of polylines: x (B, G), xs and ys (B, K) → y (B, G) and whether x
    falls on the polyline (B, G) bool. Overlapping segments are averaged."""
    x0, x1 = xs[:, None, :-1], xs[:, None, 1:]
    span = x1 - x0
    span = torch.where(span.abs() < 1e-9, torch.full_like(span, 1e-9), span)
    t = (x[..., None] - x0) / span
    on = ((t >= 0.0) & (t < 1.0)).float()
    y0, y1 = ys[:, None, :-1], ys[:, None, 1:]
    hits = on.sum(2)
    return (on * (y0 + t * (y1 - y0))).sum(2) / hits.clamp_min(1.0), hits > 0


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
        self.register_buffer("unit_grid", _unit_grid(*dims.mouth_grid), persistent=False)
        self.register_buffer("fine_unit", _unit_grid(*dims.fine_grid), persistent=False)

    def forward(
        self,
        ctrl: torch.Tensor,
        tps: torch.Tensor,
        mouth_poly: torch.Tensor,
        mouth_frame: torch.Tensor,
        mouth_box: torch.Tensor,
        fine_boxes: torch.Tensor,
        colors: torch.Tensor,
        lids: torch.Tensor,
        irises: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.dims.field_size
        fh, fw = self.dims.fine_grid
        fine = fine_boxes[:, None, 0:2] + self.fine_unit[None] * (
            fine_boxes[:, None, 2:4] - fine_boxes[:, None, 0:2]
        )  # (3, FH*FW, 2)
        # One spline evaluation for the coarse grid and the three fine boxes together.
        points = torch.cat([self.grid, fine.reshape(-1, 2)], dim=0)
        both = self._flow(points, ctrl, tps, self._hold(points))
        flow = both[: n * n].reshape(n, n, 2)
        fine_flow = both[n * n :].reshape(3, fh * fw, 2)
        eyes = self._slide_lids(fine[:2], fine_flow[:2], lids, irises, ctrl, tps)
        fine_flow = torch.cat([eyes, fine_flow[2:]], dim=0).reshape(3, fh, fw, 2)
        m = mouth_box[0:2] + self.unit_grid * (mouth_box[2:4] - mouth_box[0:2])
        mh, mw = self.dims.mouth_grid
        inside = point_in_polygon(m, mouth_poly).reshape(1, 1, mh, mw)
        # A 3×3 box filter anti-aliases the lip edge (the layer is ~1 cell per crop pixel).
        inside = F.avg_pool2d(inside, 3, stride=1, padding=1, count_include_pad=False)
        coverage = inside.reshape(-1, 1) * mouth_frame[7]
        color = self._mouth_color(m, colors, mouth_frame) * 255.0
        mouth = torch.cat([color, coverage], dim=1).reshape(mh, mw, 4)
        return flow, mouth, fine_flow

    def _flow(self, points: torch.Tensor, ctrl: torch.Tensor, tps: torch.Tensor,
              hold: torch.Tensor) -> torch.Tensor:
        """TPS displacement (source − target) at normalized points (G, 2) → (G, 2) pixels."""
        r2 = ((points * points).sum(1, keepdim=True) + (ctrl * ctrl).sum(1)[None, :]
              - 2.0 * points @ ctrl.T)
        source = tps_kernel(r2.clamp_min(0.0)) @ tps[:-3] + tps[-3:-2] + points @ tps[-2:]
        return (source - points) * hold * (0.5 * self.dims.crop_size)

    def _slide_lids(self, points: torch.Tensor, flow: torch.Tensor, lids: torch.Tensor,
                    irises: torch.Tensor, ctrl: torch.Tensor, tps: torch.Tensor) -> torch.Tensor:
        """Flow of the two eye boxes with the lids mapped exactly. points (2, G, 2) normalized,
        flow (2, G, 2) pixels, lids (2, 2, 2, L, 2): per eye, target then portrait lid lines,
        irises (2, 2, 2) → (2, G, 2) pixels.

        Column by column across each eye (u runs from the outer to the inner corner, v from
        the upper towards the lower lid, in the eye's own frame, target and portrait alike):
        the portrait's lid skin, LID_SKIN eye widths above its upper lid, is laid from the
        same height on the target down to the target's upper lid (stretched as the lid comes
        down); between the lids the portrait's eye slides under the upper lid unsqueezed (or
        is stretched, when the target eye is the wider), turned sideways with the target's
        gaze; under the lower lid the skin band LID_SKIN / 2 eye widths deep runs the same way.
        A spline cannot do this: a shut eye puts its two lids a pixel apart, and a smooth map
        cannot take them 10 pixels apart."""
        tgt, src = _eye_frame(lids[:, 0]), _eye_frame(lids[:, 1])
        u, v = tgt.local(points)
        frac = u / tgt.width
        us = frac * src.width
        top, on_top = _polyline_at(u, tgt.u_upper, tgt.v_upper)
        bottom, on_bottom = _polyline_at(u, tgt.u_lower, tgt.v_lower)
        s_top = _polyline_at(us, src.u_upper, src.v_upper)[0]
        s_bottom = _polyline_at(us, src.u_lower, src.v_lower)[0]
        # The skin bands end where they end on the portrait (scaled to the target's eye), so
        # a lid that comes down stretches its band; the spline maps the far ends.
        to_target = tgt.width / src.width
        above, below = LID_SKIN * tgt.width, 0.5 * LID_SKIN * tgt.width
        band_top = torch.minimum(s_top * to_target - above, top - 0.25 * above)
        band_bottom = torch.maximum(s_bottom * to_target + below, bottom + 0.25 * below)
        ends = torch.cat([tgt.point(u, band_top), tgt.point(u, band_bottom)], dim=1)
        g = points.shape[1]
        flat = ends.reshape(-1, 2)
        shift = self._flow(flat, ctrl, tps, self._hold(flat)) / (0.5 * self.dims.crop_size)
        far_up = ends[:, :g] + shift.reshape(2, 2 * g, 2)[:, :g]
        far_down = ends[:, g:] + shift.reshape(2, 2 * g, 2)[:, g:]
        lid_up, lid_down = src.point(us, s_top), src.point(us, s_bottom)
        # Between the lids: slide (portrait's eye under a lower lid) or stretch, whichever
        # reaches further down the portrait's eye.
        scale = src.width / tgt.width
        gap = (bottom - top).clamp_min(1e-6)
        slide = s_bottom - (bottom - v) * scale
        vs = torch.maximum(slide, s_top + (v - top) / gap * (s_bottom - s_top))
        # Gaze: the eyeball turns under the lids by the iris's sideways offset (none at the
        # corners, at most GAZE_MAX eye widths).
        iris_t = tgt.local(irises[:, 0:1])[0] / tgt.width
        iris_s = src.local(irises[:, 1:2])[0] / src.width
        gaze = (iris_s - iris_t).clamp(-GAZE_MAX, GAZE_MAX) * src.width
        bump = 4.0 * frac * (1.0 - frac)  # 0 at the corners, 1 mid-eye
        eye = src.point(us + gaze * bump.clamp(0.0, 1.0), vs)
        w_up = ((v - band_top) / (top - band_top)).clamp(0.0, 1.0)[..., None]
        w_down = ((v - bottom) / (band_bottom - bottom)).clamp(0.0, 1.0)[..., None]
        skin_up = far_up + w_up * (lid_up - far_up)
        skin_down = lid_down + w_down * (far_down - lid_down)
        mapped = torch.where((v <= top)[..., None], skin_up,
                             torch.where((v < bottom)[..., None], eye, skin_down))
        covered = on_top & on_bottom & (v >= band_top) & (v <= band_bottom)
        taper = (2.0 * bump).clamp(0.0, 1.0) * covered.float()
        explicit = (mapped - points) * (0.5 * self.dims.crop_size)
        return flow + taper[..., None] * (explicit - flow)

    def _hold(self, points: torch.Tensor) -> torch.Tensor:
        """(G, 1) weight of the displacement: 0 in the two outermost field cells, rising to 1
        over EDGE_FADE, so the background along the crop's edge stays exactly still."""
        edge = 1.0 - points.abs().amax(dim=1, keepdim=True) - 4.0 / self.dims.field_size
        return (edge / EDGE_FADE).clamp(0.0, 1.0)

    def _mouth_color(
        self, points: torch.Tensor, colors: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        """Dark cavity, darker towards its centre, a tongue in its lower part and a band of
        upper teeth under the lip. points (G, 2) normalized → (G, 3) BGR 0–1."""
        rel = points - frame[0:2]
        v = rel @ frame[2:4]  # 0 at the upper lip, 1 at the lower lip
        u = rel @ frame[4:6]  # -1 .. 1 from corner to corner
        depth = (1.0 - u * u).clamp(0.0, 1.0) * (1.0 - (2.0 * v - 1.0) ** 2).clamp(0.0, 1.0)
        cavity = colors[0][None, :] * (1.0 - depth[:, None]) + colors[1][None, :] * depth[:, None]
        # Tongue: its top an arch, highest at the centre, shaded towards the dark corners; a
        # thin dark crease keeps it off the lower lip, so the lip's inner edge stays visible.
        top = 1.0 - TONGUE_TOP * (1.0 - 0.5 * u * u)
        tongue = torch.sigmoid((v - top) * 16.0) * torch.sigmoid((1.0 - TONGUE_CREASE - v) * 40.0)
        tongue = tongue * (1.0 - u * u).clamp_min(0.0).sqrt() * frame[9]
        cavity = cavity + tongue[:, None] * (colors[3][None, :] - cavity)
        # Upper teeth: a band under the upper lip, frame[8] deep (in units of the opening).
        band = torch.sigmoid((frame[8] - v) * 24.0) * torch.sigmoid((0.7 - u.abs()) * 10.0)
        teeth = band * frame[6] * (1.0 - 0.35 * u.abs())
        return cavity * (1.0 - teeth[:, None]) + colors[2][None, :] * teeth[:, None]


def composite(
    crop: torch.Tensor, src_mouth: torch.Tensor, sampling: torch.Tensor, mouth: torch.Tensor,
    mouth_box: torch.Tensor, stretch: tuple[float, float] = (float("inf"), float("inf")),
) -> torch.Tensor:
    """Reference of the runtime's last step (streamer/renderer.py does it with OpenCV).

    crop (S, S, 3) uint8, src_mouth (S, S) uint8, sampling (S, S, 2) source pixel of each
    output pixel (pixel centres at integers), mouth (MH, MW, 4), mouth_box (4,) normalized,
    stretch: the portrait's own open mouth (src_mouth) shows through the mouth layer where
    the sampling stretches it down the image by at most stretch[0], not from stretch[1] on
    → (S, S, 3) uint8."""
    s = crop.shape[0]
    grid = (sampling + 0.5) / (0.5 * s) - 1.0
    image = torch.cat([crop.float(), src_mouth.float()[..., None]], dim=2)
    warped = F.grid_sample(image.permute(2, 0, 1)[None], grid[None], mode="bilinear",
                           padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
    # The mouth layer, resampled onto every crop pixel (zero outside its box).
    pix = _grid(s).reshape(s, s, 2)
    local = (pix - mouth_box[0:2]) / (mouth_box[2:4] - mouth_box[0:2]) * 2.0 - 1.0
    layer = F.grid_sample(mouth.permute(2, 0, 1)[None], local[None], mode="bilinear",
                          padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
    inside = ((local.abs() <= 1.0).all(dim=2, keepdim=True)).float()
    own = warped[..., 3:] / 255.0 * _own_kept(sampling, stretch)[..., None]
    alpha = ((layer[..., 3:] - own) * inside).clamp(0.0, 1.0)
    out = warped[..., :3] + alpha * (layer[..., :3] - warped[..., :3])
    return (out + 0.5).clamp(0.0, 255.0).to(torch.uint8)


def _own_kept(sampling: torch.Tensor, stretch: tuple[float, float]) -> torch.Tensor:
    """(S, S) 0–1: 1 where sampling (S, S, 2) stretches the source down the image by at most
    stretch[0], 0 from stretch[1] on (numpy.gradient's differences: central, one-sided at
    the edges)."""
    start, full = stretch
    rows = sampling[..., 1]
    if not math.isfinite(start):
        return torch.ones_like(rows)
    down = torch.cat([rows[1:2] - rows[0:1], 0.5 * (rows[2:] - rows[:-2]), rows[-1:] - rows[-2:-1]])
    ratio = 1.0 / down.clamp_min(1e-3)
    return ((full - ratio) / (full - start)).clamp(0.0, 1.0)
