"""The neural renderer: the learned generator of models/networks.py, run by onnxruntime on top
of the training-free warp, fed the portrait's cached AdaIN parameters ψ = P·ê.

Once per portrait: the embedder (E and P) runs over the K enrolled shots → ê, ψ, stored in the
`.headcast` file. Once per frame: warp the crop to the target landmarks (WarpRenderer); take
the face window, a square of half the crop's side around the target face (1.3× the face, so
a 512 crop gives the network its native 256 pixels and mouths keep full resolution); draw the
landmark image; run G(y, warp, valid; ψ) → drawn image and blend mask; blend them over the
warp inside the window, G's mask limited to its region (generator_region: around the target
mouth and wherever the warp has no texture). Elsewhere the warp is the portrait itself, and G,
meta-learned on other faces, could only take it further from the portrait: on held-out frames
with 8 shots its own mask cost 0.5 dB of face PSNR against the warp alone.

Array conventions shared with training (models/data.py): images BGR, NCHW float32 in [-1, 1];
landmark images (streamer/landmark_image.py) in [0, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.errors import ModelFileError
from streamer.landmark_image import landmark_image
from streamer.portrait import CropBox, EnrollConfig, Portrait, crop_box, cut_crop, image_hash
from streamer.references import lips_patch
from streamer.renderer import (
    RendererConfig,
    WarpRenderer,
    asset_dir,
    load_manifest_entry,
    open_session,
    register_renderer,
    session_from_bytes,
)
from streamer.texture import Rendered

log = logging.getLogger(__name__)

# generator files shipped: float, quantized (export.quantize) and half (export.half, for GPUs)
PRECISIONS = ("fp32", "int8", "fp16")
SHOT_CROP = 512  # side at which shots are cut for the embedder and fine-tuning
WINDOW_FRACTION = 0.5  # face window side / crop side
WINDOW_STEP = 16  # window offsets snap to the generator's total stride (in network pixels),
# so a window that follows the face feeds the network the same pixels, only shifted
EDGE_TAPER = 8  # network pixels over which the blend mask fades out at the window's edge
# G's region (RendererConfig.generator_region "mouth"): the target's outer lips grown by
# MOUTH_MARGIN IOD, edge blurred by MOUTH_FEATHER IOD (Gaussian σ). Held-out frames of the 8
# K-shot clips, against G's own mask (README, "Few-shot model"): K = 8 face PSNR −0.52 dB
# under the warp → −0.03 dB, mouth PSNR within 0.1 dB of G's; a margin of 0.05 IOD drew
# 0.1–0.3 dB less of the mouth
MOUTH_MARGIN = 0.15
MOUTH_FEATHER = 0.05
GENERATOR_REGIONS = ("mouth", "all")


@dataclass(frozen=True)
class ShotCrop:
    """One shot of a face: crop (S, S, 3) uint8 and (478, 3) landmarks."""

    crop: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class Window:
    """A square of the crop: pixels [x0, x0 + side) × [y0, y0 + side), shown to the network at
    `size` pixels."""

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    def landmarks(self, lm: np.ndarray) -> np.ndarray:
        """(478, 3) crop pixels → network pixels of the window."""
        return CropBox(self.x0, self.y0, self.side, self.size).to_crop(lm)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """(S, S, ...) → (size, size, ...) the window of an image of the crop."""
        part = image[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side]
        if self.side == self.size:
            return np.ascontiguousarray(part)
        flags = cv2.INTER_AREA if self.side > self.size else cv2.INTER_LINEAR
        return cv2.resize(part, (self.size, self.size), interpolation=flags)


@dataclass(frozen=True)
class WarpedWindow:
    """One frame between NeuralRenderer.begin and finish: the warp (finish blends G over a
    copy of its crop), the face window, and G's inputs for the window (landmarks, warp,
    valid; NCHW)."""

    warped: Rendered
    window: Window
    feed: dict[str, np.ndarray]
    region: np.ndarray | None = None  # (n, n) float32 0–1: where G may draw (None: anywhere)


def face_window(landmarks: np.ndarray, crop_size: int, size: int = 256) -> Window:
    """The generator's window around the face of landmarks (478, ≥2) in crop pixels."""
    side = int(crop_size * WINDOW_FRACTION)
    step = max(1, WINDOW_STEP * side // size)
    x0, y0, x1, y1 = L.face_box(landmarks)

    def place(centre: float) -> int:
        v = round((centre - side / 2) / step) * step
        return int(min(max(v, 0), crop_size - side))

    return Window(place((x0 + x1) / 2), place((y0 + y1) / 2), side, size)


def window_shot(shot: ShotCrop, size: int = 256) -> ShotCrop:
    """A shot's face window (around its own face) at the network's side."""
    window = face_window(shot.landmarks, shot.crop.shape[0], size)
    return ShotCrop(window.cut(shot.crop), window.landmarks(shot.landmarks))


def is_grey(image: np.ndarray, tolerance: int = 6) -> bool:
    """Whether a BGR uint8 image is black and white: the channels agree within `tolerance`
    levels (summed over the two channel differences) on 99% of its pixels."""
    px = image.reshape(-1, 3).astype(np.int16)
    spread = np.abs(px[:, 0] - px[:, 1]) + np.abs(px[:, 1] - px[:, 2])
    return bool(np.percentile(spread, 99) <= tolerance)


def generator_region(landmarks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Where the generator may replace the warp: around the target mouth (the warp cannot
    draw a mouth's inside as it should) and wherever the warp has no texture; elsewhere the
    warp is the portrait itself, which G, meta-learned on other faces, can only blur.
    landmarks: (478, ≥2) window pixels; valid: (n, n) 0–1 → (n, n) float32 0–1."""
    region = 1.0 - valid.astype(np.float32)
    patch = lips_patch(landmarks, valid.shape[0], MOUTH_MARGIN, MOUTH_FEATHER)
    if patch is None:  # the mouth is outside the window
        return region
    (x0, y0, x1, y1), mouth = patch
    np.maximum(region[y0:y1, x0:x1], mouth, out=region[y0:y1, x0:x1])
    return region


def _edge_taper(size: int) -> np.ndarray:
    i = np.arange(size, dtype=np.float32) + 0.5
    ramp = np.clip(np.minimum(i, size - i) / EDGE_TAPER, 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])


def to_input(image: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 → (3, S, S) float32 in [-1, 1]."""
    return (image.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0


def landmark_input(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(478, ≥2) crop pixels → (3, S, S) float32 in [0, 1]."""
    return landmark_image(landmarks, size).transpose(2, 0, 1).astype(np.float32) / 255.0


def generator_key(config: RendererConfig) -> str:
    """The manifest key of the configured model's generator at its precision."""
    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    return f"generator_{config.model}" + (
        "" if config.precision == "fp32" else f"_{config.precision}")


def neural_available(config: RendererConfig = RendererConfig()) -> bool:
    """Whether the shipped neural model files are installed (and listed in the manifest)."""
    try:
        entry = load_manifest_entry(asset_dir(config), generator_key(config))
    except ModelFileError:
        return False
    return (asset_dir(config) / entry["file"]).is_file()


class Embedder:
    """E and P through onnxruntime: K shots → (ê (D,), ψ (P,)), float32."""

    def __init__(self, config: RendererConfig = RendererConfig()) -> None:
        self._session, entry = open_session(asset_dir(config), f"embedder_{config.model}", config)
        self.size = int(entry["dims"]["size"])

    def embed(self, shots: list[ShotCrop]) -> tuple[np.ndarray, np.ndarray]:
        """shots: crops of any side (their face windows are taken here)."""
        if not shots:
            raise ValueError("no shots to embed")
        windows = [window_shot(s, self.size) for s in shots]
        x = np.stack([to_input(s.crop) for s in windows])[None]
        y = np.stack([landmark_input(s.landmarks, self.size) for s in windows])[None]
        e, psi = self._session.run(None, {"shots": x, "shot_landmarks": y})
        return e[0], psi[0]


def shot_crops(portrait: Portrait, images: list[np.ndarray], size: int = SHOT_CROP
               ) -> list[ShotCrop]:
    """The enrolled shots (portrait.shots, in that order) cut as size² crops; images in any
    order (matched by content hash; faceless ones that enrollment skipped are ignored). Frames
    of one video (all the same size) share the rendered shot's crop box so their backgrounds
    line up with the warp of the rendered shot; separate photos get their own."""
    images = _shot_images(portrait, images)
    shared = CropBox(portrait.box.x0, portrait.box.y0, portrait.box.side, size)
    same_camera = len({im.shape for im in images}) == 1
    out = []
    for image, lm in zip(images, portrait.shots, strict=True):
        box = shared if same_camera else crop_box(lm, EnrollConfig(crop_size=size))
        out.append(ShotCrop(cut_crop(image, box), box.to_crop(lm)))
    return out


def _shot_images(portrait: Portrait, images: list[np.ndarray]) -> list[np.ndarray]:
    """The enrolled images in the portrait's shot order (matched by content hash)."""
    by_hash = {image_hash(im): im for im in images}
    return [by_hash[h] for h in portrait.sources]


def with_embedding(
    portrait: Portrait, images: list[np.ndarray], config: RendererConfig = RendererConfig()
) -> Portrait:
    """The portrait with ê and ψ of its K shots (images as for shot_crops)."""
    e, psi = Embedder(config).embed(shot_crops(portrait, images))
    return replace(portrait, embedding=e, psi=psi)


class NeuralRenderer:
    """Warp, then the learned generator; see the module docstring."""

    def __init__(self, portrait: Portrait, config: RendererConfig = RendererConfig()) -> None:
        self._warp = WarpRenderer(portrait, config, as_trained=True)  # the warp G was trained over
        directory = asset_dir(config)
        if portrait.generator.size:  # fine-tuned for this portrait (headcast enroll --finetune)
            if config.precision != "fp32":
                log.info("the portrait's fine-tuned generator runs in fp32")
            self._session = session_from_bytes(portrait.generator.tobytes(), config)
        else:
            self._session, _ = open_session(directory, generator_key(config), config)
        self._size = int(self._session.get_inputs()[0].shape[-1])
        psi = portrait.psi
        if not psi.size:  # enrolled before the neural model: embed the rendered shot now
            shot = ShotCrop(portrait.crop, portrait.crop_landmarks)
            psi = Embedder(config).embed([shot])[1]
        self._psi = psi.astype(np.float32)[None]
        self._crop_size = portrait.crop_size
        self._taper = _edge_taper(self._size)
        # G learned colour faces; on a black-and-white photo it would draw a pink tongue
        self._grey = is_grey(portrait.crop)
        if config.generator_region not in GENERATOR_REGIONS:
            raise ValueError(f"generator_region must be one of {GENERATOR_REGIONS}, "
                             f"not {config.generator_region!r}")
        self._region = config.generator_region

    def render(self, target: np.ndarray) -> np.ndarray:
        return self.finish(self.begin(target))

    def render_textured(self, target: np.ndarray) -> Rendered:
        return self.finish_textured(self.begin(target))

    def least_scale(self, target: np.ndarray) -> float:
        """How far the warp under G stretches the picture (WarpRenderer.least_scale)."""
        return self._warp.least_scale(target)

    def begin(self, target: np.ndarray) -> WarpedWindow:
        """The warp and the generator's inputs (streamer.renderer.StagedRenderer)."""
        warped, valid = self._warp.render_with_validity(target)
        window = face_window(target, self._crop_size, self._size)
        landmarks, cut_valid = window.landmarks(target), window.cut(valid)
        feed = self.inputs(window.cut(warped.crop), cut_valid, landmarks)
        region = generator_region(landmarks, cut_valid) if self._region == "mouth" else None
        return WarpedWindow(warped, window, feed, region)

    def finish(self, begun: object) -> np.ndarray:
        """G on the window, blended over the warp → (S, S, 3) uint8 crop."""
        return self.finish_textured(begun).crop

    def finish_textured(self, begun: object) -> Rendered:
        """finish(), and the portrait's texture that is left where the mask keeps the warp."""
        assert isinstance(begun, WarpedWindow)
        window, warped = begun.window, begun.warped
        drawn, mask = self.run(begun.feed)
        mask = mask * self._taper
        if begun.region is not None:
            mask = mask * begun.region
        if window.side != window.size:
            drawn = cv2.resize(drawn, (window.side,) * 2, interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, (window.side,) * 2, interpolation=cv2.INTER_LINEAR)
        if self._grey:
            drawn = cv2.cvtColor(cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        crop = warped.crop.copy()  # the texture may share the warp's pixels
        x0, y0, side = window.x0, window.y0, window.side
        region = crop[y0 : y0 + side, x0 : x0 + side]
        # G over the warp, m·drawn + (1 − m)·warp: over the box where the mask is not 0 (0
        # leaves the warp's pixel as it is), in place, the same operations in the same order
        # (3.6 → 0.9 ms at the 512 crop)
        x, y, w, h = cv2.boundingRect((mask > 0).view(np.uint8))
        part = np.s_[y : y + h, x : x + w]
        m, under = mask[part][:, :, None], region[part]
        mixed = m * drawn[part]
        mixed += (1.0 - m) * under
        mixed += 0.5
        under[:] = np.clip(mixed, 0, 255, out=mixed).astype(np.uint8)
        texture = warped.texture
        if texture is not None:
            texture = texture.covered((x0, y0, x0 + side, y0 + side), mask)
        return Rendered(crop, texture)

    def inputs(
        self, warped: np.ndarray, valid: np.ndarray, landmarks: np.ndarray
    ) -> dict[str, np.ndarray]:
        """G's feed for one window at its own side: warped (n, n, 3) uint8, valid (n, n),
        landmarks (478, 3) window pixels."""
        return {
            "landmarks": landmark_input(landmarks, self._size)[None],
            "warp": to_input(warped)[None],
            "valid": valid.astype(np.float32)[None, None],
            "psi": self._psi,
        }

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """G → (drawn (n, n, 3) float32 0–255, mask (n, n) float32 0–1)."""
        drawn, mask = self._session.run(["drawn", "mask"], feed)
        return (drawn[0].transpose(1, 2, 0) + 1.0) * 127.5, mask[0, 0]

    def close(self) -> None:
        self._warp.close()
        self._session = None


register_renderer("neural", NeuralRenderer)
