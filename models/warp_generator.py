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
  eye_white    (2, FH, FW) float32 0–1 over the two eye boxes: where an eye opened wider than
               the portrait's shows its white (the runtime lays the portrait's white there)

Speed (the graph runs every frame on a 2-core CPU): point sets are planar inside, an x and a
y tensor with the points along the last axis, since onnxruntime broadcasts slowly over a
trailing axis of 2 or 3; the spline is evaluated on the coarse field, the mouth box's fine
cells, every other fine cell of the eye boxes (upsampled: between the lids the lid map below
replaces it) and 17 columns per eye for the lid skin's far ends (WarpDims.eye_div,
end_samples). The same graph in a (G, 2)
layout, with the spline at every eye cell and every far end, ran 12.2 ms a frame at the 512
crop where this one runs 4.0, the two interleaved in one process (same outputs within 0.6 px,
0.06 at the 99th percentile).

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
WHITE_MIN = 0.02  # how much wider than the portrait's (eye widths) an eye opens before its
# white shows: a turned head's opening changes by at most 0.01
LID_MARGIN = 0.08  # the upper lid's margin (lashes, liner) under its landmarks, eye widths:
# a widened eye lifts it with the lid, and the white shows below it
WHITE_SHADE = 0.06  # most of the eye under the margin (the lid's shade) the white covers
LOWER_MARGIN = 0.05  # the lower lid's margin (waterline, lashes), eye widths: it drops with
# the lid, and the white shows above it
WHITE_EDGE = 0.02  # the white's soft lower edge, eye widths
IRIS_RADIUS = 0.21  # the iris's radius, eye widths (MediaPipe's: 0.20–0.23 on 15 of 16 shared eyes)
IRIS_EDGE = 0.15  # the iris's soft edge against the white, × its radius
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
    eye_div: int = 2  # the spline runs on every eye_div-th fine cell of the eye boxes
    end_samples: int = 17  # columns across an eye where the spline maps the lid skin's far ends

    @property
    def field_size(self) -> int:
        return self.crop_size // self.field_div


def _grid(size: int) -> torch.Tensor:
    """(size*size, 2) pixel-centre coordinates in [-1, 1], x fastest (align_corners=False)."""
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _unit_grid(rows: int, cols: int) -> torch.Tensor:
    """(2, rows*cols) cell centres in [0, 1]², the x row then the y row, x fastest."""
    uy, ux = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols,
                            indexing="ij")
    return torch.stack([ux.reshape(-1), uy.reshape(-1)])


def _coarse_grid(rows: int, cols: int, div: int) -> torch.Tensor:
    """(2, rows/div * cols/div) points in [0, 1]² from the first to the last cell centre of a
    rows × cols grid, evenly: upsampled to rows × cols with align_corners=True, values at them
    land on that grid's cell centres. The x row then the y row, x fastest."""
    half = [torch.linspace(0.5 / k, 1.0 - 0.5 / k, k // div) for k in (rows, cols)]
    uy, ux = torch.meshgrid(*half, indexing="ij")
    return torch.stack([ux.reshape(-1), uy.reshape(-1)])


def _spread(boxes: torch.Tensor, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of a unit grid (2, G) laid over each of boxes (B, 4: x0, y0, x1, y1) → their
    x and y, (B, G) each."""
    return (boxes[:, 0:1] + unit[0] * (boxes[:, 2:3] - boxes[:, 0:1]),
            boxes[:, 1:2] + unit[1] * (boxes[:, 3:4] - boxes[:, 1:2]))


def tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """Thin-plate radial basis U = r² log r² (r² floored at 1e-12: U(0) = -3e-11)."""
    r2 = r2.clamp_min(1e-12)
    return r2 * torch.log(r2)


@dataclass(frozen=True)
class _EyeFrame:
    """An eye's frame: origin at the outer corner, u towards the inner corner, v across
    towards the lower lid; its lid lines in (u, v). Tensors batched over the two eyes, the
    frame's vectors as (2, 1) x and y parts."""

    ox: torch.Tensor  # origin
    oy: torch.Tensor
    ax: torch.Tensor  # unit axis
    ay: torch.Tensor
    nx: torch.Tensor  # unit normal
    ny: torch.Tensor
    width: torch.Tensor  # (2, 1) corner to corner
    u_upper: torch.Tensor  # (2, L)
    v_upper: torch.Tensor
    u_lower: torch.Tensor
    v_lower: torch.Tensor

    def local(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, v) of points x, y (2, G) in the eye frames."""
        return _local(x, y, self.ox, self.oy, self.ax, self.ay, self.nx, self.ny)

    def point(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ox + u * self.ax + v * self.nx, self.oy + u * self.ay + v * self.ny


def _eye_frame(lines: torch.Tensor) -> _EyeFrame:
    """lines (2, 2, L, 2): per eye the upper, then the lower lid, outer corner first."""
    upper_x, upper_y = lines[:, 0, :, 0], lines[:, 0, :, 1]  # (2, L)
    lower_x, lower_y = lines[:, 1, :, 0], lines[:, 1, :, 1]
    ox, oy = upper_x[:, :1], upper_y[:, :1]
    sx, sy = upper_x[:, -1:] - ox, upper_y[:, -1:] - oy
    width = torch.sqrt(sx * sx + sy * sy).clamp_min(1e-6)
    ax, ay = sx / width, sy / width
    below = ((lower_x.mean(1, keepdim=True) - upper_x.mean(1, keepdim=True)) * -ay
             + (lower_y.mean(1, keepdim=True) - upper_y.mean(1, keepdim=True)) * ax)
    sign = torch.where(below < 0.0, -1.0, 1.0)
    nx, ny = -ay * sign, ax * sign
    axes = (ox, oy, ax, ay, nx, ny)
    return _EyeFrame(*axes, width, *_local(upper_x, upper_y, *axes),
                     *_local(lower_x, lower_y, *axes))


def _local(x: torch.Tensor, y: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor,
           ax: torch.Tensor, ay: torch.Tensor, nx: torch.Tensor, ny: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) of points x, y in a frame: along the axis, along the normal."""
    dx, dy = x - ox, y - oy
    return dx * ax + dy * ay, dx * nx + dy * ny


def _polyline_at(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Piecewise-linear y(x) of polylines: x (B, G), xs and ys (B, K) → y (B, G) and whether x
    falls on the polyline (B, G) bool. Overlapping segments are averaged. Laid out (B, K-1, G):
    the long axis last."""
    x0, x1 = xs[:, :-1, None], xs[:, 1:, None]
    span = x1 - x0
    span = torch.where(span.abs() < 1e-9, torch.full_like(span, 1e-9), span)
    t = (x[:, None, :] - x0) / span
    on = ((t >= 0.0) & (t < 1.0)).float()
    y0, y1 = ys[:, :-1, None], ys[:, 1:, None]
    hits = on.sum(1)
    return (on * (y0 + t * (y1 - y0))).sum(1) / hits.clamp_min(1.0), hits > 0


def point_in_polygon(x: torch.Tensor, y: torch.Tensor, poly: torch.Tensor) -> torch.Tensor:
    """Even-odd rule. Points x, y: (G,), poly: (M, 2) closed implicitly → (G,) float 0/1."""
    b = torch.roll(poly, shifts=-1, dims=0)
    ax, ay = poly[:, 0:1], poly[:, 1:2]  # (M, 1): edges down, points along
    bx, by = b[:, 0:1], b[:, 1:2]
    py = y[None, :]
    straddles = (ay > py) != (by > py)
    slope = (bx - ax) / torch.where((by - ay).abs() < 1e-9, torch.full_like(ay, 1e-9), by - ay)
    crossings = (straddles & (x[None, :] < ax + (py - ay) * slope)).float().sum(dim=0)
    return 0.5 - 0.5 * torch.cos(torch.pi * crossings)


class WarpGenerator(nn.Module):
    """Point sets are planar inside (an x and a y tensor, the points along the last axis):
    onnxruntime broadcasts slowly over a trailing axis of 2 or 3; in the (G, 2) layout this
    module had before, most of the graph's time went there (see "Speed" above)."""

    def __init__(self, dims: WarpDims = WarpDims()) -> None:
        super().__init__()
        self.dims = dims
        grid = _grid(dims.field_size).T.contiguous()
        self.register_buffer("grid", grid, persistent=False)  # (2, F*F)
        self.register_buffer("grid_hold", self._hold(grid[0], grid[1]), persistent=False)
        self.register_buffer("unit_grid", _unit_grid(*dims.mouth_grid), persistent=False)
        self.register_buffer("fine_unit", _unit_grid(*dims.fine_grid), persistent=False)
        self.register_buffer("eye_unit", _coarse_grid(*dims.fine_grid, dims.eye_div),
                             persistent=False)
        self.register_buffer("end_frac", torch.linspace(0.0, 1.0, dims.end_samples)[None],
                             persistent=False)

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
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.dims.field_size
        fh, fw = self.dims.fine_grid
        g = fh * fw
        fine_x, fine_y = _spread(fine_boxes, self.fine_unit)
        # One spline evaluation for the coarse grid and the fine boxes together: the mouth's
        # at every fine cell, the eyes' at every eye_div-th, then upsampled (the lid map below
        # replaces the spline between the lids; around them it is smooth skin).
        eye_x, eye_y = _spread(fine_boxes[:2], self.eye_unit)
        px = torch.cat([self.grid[0], eye_x.reshape(-1), fine_x[2]])
        py = torch.cat([self.grid[1], eye_y.reshape(-1), fine_y[2]])
        hold = torch.cat([self.grid_hold, self._hold(px[n * n :], py[n * n :])])
        dx, dy = self._flow(px, py, ctrl, tps, hold)
        flow = torch.stack([dx[: n * n], dy[: n * n]], dim=1).reshape(n, n, 2)
        eh, ew = fh // self.dims.eye_div, fw // self.dims.eye_div
        e = n * n + 2 * eh * ew
        eyes = torch.stack([dx[n * n : e], dy[n * n : e]]).reshape(2, 2, eh, ew)
        eyes = F.interpolate(eyes.transpose(0, 1), size=(fh, fw), mode="bilinear",
                             align_corners=True).reshape(2, 2, g)  # eye, x/y, cell
        fdx = torch.cat([eyes[:, 0], dx[None, e:]])
        fdy = torch.cat([eyes[:, 1], dy[None, e:]])
        ex, ey, white = self._slide_lids(fine_x[:2], fine_y[:2], fdx[:2], fdy[:2], lids,
                                         irises, ctrl, tps)
        # The same 3×3 box filter as the mouth's anti-aliases the white's edges.
        white = F.avg_pool2d(white.reshape(2, 1, fh, fw), 3, stride=1, padding=1,
                             count_include_pad=False).reshape(2, fh, fw)
        fine_flow = torch.stack([torch.cat([ex, fdx[2:]]), torch.cat([ey, fdy[2:]])], dim=2)
        mx, my = (t[0] for t in _spread(mouth_box[None], self.unit_grid))
        mh, mw = self.dims.mouth_grid
        inside = point_in_polygon(mx, my, mouth_poly).reshape(1, 1, mh, mw)
        # A 3×3 box filter anti-aliases the lip edge (the layer is ~1 cell per crop pixel).
        inside = F.avg_pool2d(inside, 3, stride=1, padding=1, count_include_pad=False)
        coverage = inside.reshape(1, -1) * mouth_frame[7]
        color = self._mouth_color(mx, my, colors, mouth_frame) * 255.0
        mouth = torch.cat([color, coverage], dim=0).T.reshape(mh, mw, 4)
        return flow, mouth, fine_flow.reshape(3, fh, fw, 2), white

    def _flow(self, x: torch.Tensor, y: torch.Tensor, ctrl: torch.Tensor, tps: torch.Tensor,
              hold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """TPS displacement (source − target) at normalized points x, y (G,) → x and y (G,)
        pixels. The kernel is laid out (N, G), the points along the last axis."""
        r2 = ((x * x + y * y)[None, :] + (ctrl * ctrl).sum(1, keepdim=True)
              - 2.0 * ctrl @ torch.stack([x, y]))
        radial = tps[:-3].T @ tps_kernel(r2)  # (2, G)
        scale = hold * (0.5 * self.dims.crop_size)
        sx = radial[0] + tps[-3, 0] + x * tps[-2, 0] + y * tps[-1, 0]
        sy = radial[1] + tps[-3, 1] + x * tps[-2, 1] + y * tps[-1, 1]
        return (sx - x) * scale, (sy - y) * scale

    def _slide_lids(self, x: torch.Tensor, y: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor,
                    lids: torch.Tensor, irises: torch.Tensor, ctrl: torch.Tensor,
                    tps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flow of the two eye boxes with the lids mapped exactly. Points x, y (2, G)
        normalized, their flow fx, fy (2, G) pixels, lids (2, 2, 2, L, 2): per eye, target then
        portrait lid lines, irises (2, 2, 2) → the flow's x and y (2, G), pixels, and the
        white's coverage (2, G), 0–1.

        Column by column across each eye (u runs from the outer to the inner corner, v from
        the upper towards the lower lid, in the eye's own frame, target and portrait alike):
        the portrait's lid skin, LID_SKIN eye widths above its upper lid, is laid from the
        same height on the target down to the target's upper lid (stretched as the lid comes
        down); between the lids the portrait's eye slides under the upper lid unsqueezed,
        turned sideways with the target's gaze (an eye opened up to WHITE_MIN wider than the
        portrait's is stretched; wider still, it keeps its scale and stays where the target's
        iris is, each lid takes its margin with it and the white shows between); under the
        lower lid the skin band LID_SKIN / 2 eye widths deep runs the same way.
        A spline cannot do this: a shut eye puts its two lids a pixel apart, and a smooth map
        cannot take them 10 pixels apart."""
        tgt, src = _eye_frame(lids[:, 0]), _eye_frame(lids[:, 1])
        u, v = tgt.local(x, y)
        g = x.shape[1]
        # The lid lines at each point's column and at end_samples columns from corner to
        # corner (where the spline maps the skin bands' far ends, below), all in one batch.
        frac = torch.cat([u / tgt.width, self.end_frac.expand(2, -1)], dim=1)
        ut, us = frac * tgt.width, frac * src.width
        lines, on = _polyline_at(
            torch.cat([ut, ut, us, us]),
            torch.cat([tgt.u_upper, tgt.u_lower, src.u_upper, src.u_lower]),
            torch.cat([tgt.v_upper, tgt.v_lower, src.v_upper, src.v_lower]))
        top, bottom, s_top, s_bottom = lines.split(2)
        # The skin bands end where they end on the portrait (scaled to the target's eye), so
        # a lid that comes down stretches its band.
        to_target = tgt.width / src.width
        above, below = LID_SKIN * tgt.width, 0.5 * LID_SKIN * tgt.width
        band_top = torch.minimum(s_top * to_target - above, top - 0.25 * above)
        band_bottom = torch.maximum(s_bottom * to_target + below, bottom + 0.25 * below)
        # The spline maps the far ends. They move with the column alone, so it is evaluated
        # at the sampled columns and each point takes the shift of its column, linearly
        # between samples (6144 spline points at the 512 crop were 2 ms of 6 a frame).
        ku = ut[:, g:]
        ends_x, ends_y = (torch.cat([a, b], 1).reshape(-1) for a, b in
                          zip(tgt.point(ku, band_top[:, g:]), tgt.point(ku, band_bottom[:, g:]),
                              strict=True))
        shift = self._flow(ends_x, ends_y, ctrl, tps, self._hold(ends_x, ends_y))
        k = self.dims.end_samples
        pos = frac[:, :g].clamp(0.0, 1.0) * (k - 1)
        left = pos.floor().clamp(max=k - 2)
        t, left = pos - left, left.long()
        up_end, down_end = tgt.point(u, band_top[:, :g]), tgt.point(u, band_bottom[:, :g])
        far_up, far_down = [], []
        for s, up, down in zip(shift, up_end, down_end, strict=True):
            s = s.reshape(2, 2, k) / (0.5 * self.dims.crop_size)  # eye, up/down, column
            at = [torch.gather(s[:, i], 1, left) for i in (0, 1)]
            nxt = [torch.gather(s[:, i], 1, left + 1) for i in (0, 1)]
            far_up.append(up + at[0] + t * (nxt[0] - at[0]))
            far_down.append(down + at[1] + t * (nxt[1] - at[1]))
        frac, us = frac[:, :g], us[:, :g]
        top, bottom, s_top, s_bottom = top[:, :g], bottom[:, :g], s_top[:, :g], s_bottom[:, :g]
        band_top, band_bottom = band_top[:, :g], band_bottom[:, :g]
        on_top, on_bottom = on[0:2, :g], on[2:4, :g]
        lid_up, lid_down = src.point(us, s_top), src.point(us, s_bottom)
        # Between the lids: slide (portrait's eye under a lower lid) or stretch, whichever
        # reaches further down the portrait's eye; but an eye opened wider than the
        # portrait's keeps its scale too, held where the target's iris is (stretched, the
        # iris grew into a tall oval and no white showed; hung from the lower lid, it
        # dropped with the lid).
        scale = self._across_scale(tgt, ctrl, tps)
        gap = (bottom - top).clamp_min(1e-6)
        slide = s_bottom - (bottom - v) * scale
        opening = ((tgt.v_lower - tgt.v_upper).amax(1, keepdim=True) * scale
                   - (src.v_lower - src.v_upper).amax(1, keepdim=True))
        wide = opening > WHITE_MIN * src.width
        # The upper lid lifts its margin (lashes, liner: LID_MARGIN under its landmarks) with
        # it, the lower lid takes its own (LOWER_MARGIN) down; the white covers what the
        # target shows between the margins and the eye (left behind, the upper margin read
        # as a second lid line across the iris, and the tracker took it for the lid), and
        # the lid's shade under the upper margin, WHITE_SHADE at most (a widened eye shows
        # it lit); under the white the map takes the eye's nearest row.
        margin, low = LID_MARGIN * src.width, LOWER_MARGIN * src.width
        in_margin = v < top + margin / scale
        in_low = v > bottom - low / scale
        extra = gap * scale - (s_bottom - s_top)
        edge = s_top + margin + torch.minimum(extra.clamp_min(0.0), WHITE_SHADE * src.width)
        edge_low = s_bottom - low
        iris_u, iris_v = tgt.local(irises[:, 0, 0:1], irises[:, 0, 1:2])
        iris_su, iris_sv = src.local(irises[:, 1, 0:1], irises[:, 1, 1:2])
        held = iris_sv + (v - iris_v) * scale  # the eyeball stays where the iris is
        soft = WHITE_EDGE * src.width
        below_margin = (((v - top) * scale - margin) / soft + 0.5).clamp(0.0, 1.0)
        above_low = (((bottom - v) * scale - low) / soft + 0.5).clamp(0.0, 1.0)
        white = (((edge - held) / soft + 0.5).clamp(0.0, 1.0) * below_margin
                 + ((held - edge_low) / soft + 0.5).clamp(0.0, 1.0) * above_low)
        white = white.clamp(max=1.0) * wide.float()
        lifted = torch.where(in_margin, s_top + (v - top) * scale,
                             torch.where(in_low, slide,
                                         torch.maximum(torch.minimum(held, edge_low), edge)))
        vs = torch.where(wide, lifted,
                         torch.maximum(slide, s_top + (v - top) / gap * (s_bottom - s_top)))
        # Gaze: the eyeball turns under the lids by the iris's sideways offset (none at the
        # corners, at most GAZE_MAX eye widths).
        iris_t = iris_u / tgt.width
        # Not over the iris: there the eye's top row, drawn up, stands for the top of the
        # iris the portrait's lid hid (the white over it left the iris a half-disc).
        reach = torch.sqrt((u - iris_u) ** 2 + (v - iris_v) ** 2) / (IRIS_RADIUS * tgt.width)
        white = white * ((reach - 1.0) / IRIS_EDGE + 0.5).clamp(0.0, 1.0)
        gaze = (iris_su / src.width - iris_t).clamp(-GAZE_MAX, GAZE_MAX) * src.width
        bump = 4.0 * frac * (1.0 - frac)  # 0 at the corners, 1 mid-eye
        eye = src.point(us + gaze * bump.clamp(0.0, 1.0), vs)
        w_up = ((v - band_top) / (top - band_top)).clamp(0.0, 1.0)
        w_down = ((v - bottom) / (band_bottom - bottom)).clamp(0.0, 1.0)
        is_up, is_eye = v <= top, v < bottom
        covered = on_top & on_bottom & (v >= band_top) & (v <= band_bottom)
        taper = (2.0 * bump).clamp(0.0, 1.0) * covered.float()
        flows = []
        for c, (p, f) in enumerate(((x, fx), (y, fy))):  # c: the x, then the y coordinate
            skin_up = far_up[c] + w_up * (lid_up[c] - far_up[c])
            skin_down = lid_down[c] + w_down * (far_down[c] - lid_down[c])
            mapped = torch.where(is_up, skin_up, torch.where(is_eye, eye[c], skin_down))
            explicit = (mapped - p) * (0.5 * self.dims.crop_size)
            flows.append(f + taper * (explicit - f))
        return flows[0], flows[1], white * taper * is_eye.float()

    def _across_scale(self, tgt: _EyeFrame, ctrl: torch.Tensor, tps: torch.Tensor
                      ) -> torch.Tensor:
        """Portrait lengths per target length across each eye (along its normal), from the
        spline at the eye's centre → (2, 1). Not the ratio of the eyes' widths: a turning
        head narrows the eye, not its opening."""
        mid = 0.5 * (tgt.v_upper.mean(1, keepdim=True) + tgt.v_lower.mean(1, keepdim=True))
        cx, cy = tgt.point(0.5 * tgt.width, mid)
        step = 0.01
        px = torch.cat([cx, cx + step * tgt.nx]).reshape(-1)
        py = torch.cat([cy, cy + step * tgt.ny]).reshape(-1)
        dx, dy = self._flow(px, py, ctrl, tps, self._hold(px, py))
        sx = (px + dx / (0.5 * self.dims.crop_size)).reshape(2, 2, 1)
        sy = (py + dy / (0.5 * self.dims.crop_size)).reshape(2, 2, 1)
        return torch.sqrt((sx[1] - sx[0]) ** 2 + (sy[1] - sy[0]) ** 2) / step

    def _hold(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Weight of the displacement at points x, y: 0 in the two outermost field cells,
        rising to 1 over EDGE_FADE, so the background along the crop's edge stays exactly
        still."""
        edge = 1.0 - torch.maximum(x.abs(), y.abs()) - 4.0 / self.dims.field_size
        return (edge / EDGE_FADE).clamp(0.0, 1.0)

    def _mouth_color(
        self, x: torch.Tensor, y: torch.Tensor, colors: torch.Tensor, frame: torch.Tensor
    ) -> torch.Tensor:
        """Dark cavity, darker towards its centre, a tongue in its lower part and a band of
        upper teeth under the lip. Points x, y (G,) normalized → (3, G) BGR 0–1."""
        rx, ry = x - frame[0], y - frame[1]
        v = rx * frame[2] + ry * frame[3]  # 0 at the upper lip, 1 at the lower lip
        u = rx * frame[4] + ry * frame[5]  # -1 .. 1 from corner to corner
        depth = (1.0 - u * u).clamp(0.0, 1.0) * (1.0 - (2.0 * v - 1.0) ** 2).clamp(0.0, 1.0)
        cavity = colors[0][:, None] + depth[None, :] * (colors[1] - colors[0])[:, None]
        # Tongue: its top an arch, highest at the centre, shaded towards the dark corners; a
        # thin dark crease keeps it off the lower lip, so the lip's inner edge stays visible.
        top = 1.0 - TONGUE_TOP * (1.0 - 0.5 * u * u)
        tongue = torch.sigmoid((v - top) * 16.0) * torch.sigmoid((1.0 - TONGUE_CREASE - v) * 40.0)
        tongue = tongue * (1.0 - u * u).clamp_min(0.0).sqrt() * frame[9]
        cavity = cavity + tongue[None, :] * (colors[3][:, None] - cavity)
        # Upper teeth: a band under the upper lip, frame[8] deep (in units of the opening).
        band = torch.sigmoid((frame[8] - v) * 24.0) * torch.sigmoid((0.7 - u.abs()) * 10.0)
        teeth = band * frame[6] * (1.0 - 0.35 * u.abs())
        return cavity + teeth[None, :] * (colors[2][:, None] - cavity)


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
