"""Renderers: a portrait crop + target landmarks → the rendered crop, through onnxruntime.

Shipped model files are listed in assets/manifest.json (sha256, opset, input/output names and
shapes) and checked on load. Renderers are registered by name so later ones (the learned
generator) and test fakes plug into the same slot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from streamer import landmarks as L
from streamer import scattered
from streamer import warp_inputs as W
from streamer.devices import session_providers
from streamer.errors import ModelFileError
from streamer.portrait import Portrait, eye_white_colour, own_mouth_is_shadow, own_mouth_mask
from streamer.references import (
    FEATURE_SWITCH,
    FEATURES,
    Distance,
    Feature,
    Patch,
    ReferencePicker,
    shot_distances,
)
from streamer.still_background import Held, StillBackground
from streamer.texture import Box, Rendered, Texture
from streamer.turn_limits import least_scale

# Where the target opens the mouth wider than the shot it is warped from, the composite keeps
# that shot's own open mouth (teeth and all) where the warp stretches it down the image by up
# to 3 ×, and from there to 5 × gives way to the drawn interior. Kept however far stretched,
# EAMM_60 (a photo resting 0.07 IOD open, teeth showing) opened wide had its teeth smeared
# into vertical streaks; dropping the whole own mouth from 1.5 × its opening replaced smiling
# teeth (dreamtalk_menglu2) with a dark smear.
OWN_MOUTH_STRETCH = (3.0, 5.0)
# Lips parted over a shadow (portrait.own_mouth_is_shadow: a narrow own opening with no
# teeth, EAMM_14, photo_of_child_photo) give way sooner: stretched 2–3 ×, the shadow between
# the lips became a tall blurred band of lip colour, where the drawn interior shows an open
# mouth.
OWN_SHADOW_STRETCH = (1.5, 2.5)


@dataclass(frozen=True)
class RendererConfig:
    name: str = "auto"  # registered renderer; auto: "neural" when its model is installed,
    # else "warp" (training-free)
    # onnxruntime providers, in order (streamer.devices: --device); those missing are skipped
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 0  # onnxruntime intra-op threads; 0 lets onnxruntime choose
    # neural generator: fp32; int8 (quantized, faster on a CPU: live default); fp16 (for GPUs)
    precision: str = "fp32"
    model_dir: Path | None = None  # folder with manifest.json; None: the shipped assets
    model: str = "small"  # neural: the model's name in that manifest (embedder_<model>, ...)
    # neural: where the generator's blend mask may replace the warp. "mouth": around the
    # target's mouth and where the warp has no texture (streamer.neural.generator_region);
    # "all": wherever G's own mask says (as trained)
    generator_region: str = "mouth"
    # warp: the portrait's own open mouth is kept where the warp stretches it down the image by
    # up to [0] ×, the drawn interior replaces it from [1] × (inf, inf: kept however stretched);
    # own_shadow_stretch for lips parted over a shadow (portrait.own_mouth_is_shadow)
    own_mouth_stretch: tuple[float, float] = OWN_MOUTH_STRETCH
    own_shadow_stretch: tuple[float, float] = OWN_SHADOW_STRETCH
    # warp: the background stays still where the portrait file has its person masks
    # (StillBackground); False: the background near the head moves with it, as the spline says
    still_background: bool = True
    # warp, K > 1 shots: the mouth and the eyes each from the shot where they are nearest in
    # shape, laid over the frame warped from the shot nearest in the whole face
    # (streamer.references.FEATURES)
    feature_shots: bool = True


class Renderer(Protocol):
    """Renders one portrait. Built once per portrait (its cached tensors are bound then)."""

    def render(self, target: np.ndarray) -> np.ndarray:
        """target: (478, 3) float32 landmarks in crop pixels → (S, S, 3) uint8 BGR crop."""
        ...

    def close(self) -> None:
        """Release the session; safe to call more than once."""
        ...


@runtime_checkable
class TexturedRenderer(Protocol):
    """A renderer that can also say where its crop is the portrait's own texture
    (streamer.texture), for a paste-back at the portrait's full resolution."""

    def render_textured(self, target: np.ndarray) -> Rendered:
        """render(), with the texture (Rendered.crop is what render() returns)."""
        ...


@runtime_checkable
class StagedRenderer(Protocol):
    """A renderer whose frame splits into two halves that may run on different threads
    (the live pipeline overlaps them across consecutive frames). render(t) = finish(begin(t)),
    render_textured(t) = finish_textured(begin(t))."""

    def begin(self, target: np.ndarray) -> object:
        """First half (target landmarks → an intermediate only finish() reads)."""
        ...

    def finish(self, begun: object) -> np.ndarray:
        """Second half → (S, S, 3) uint8 BGR crop."""
        ...

    def finish_textured(self, begun: object) -> Rendered:
        """finish(), with the texture."""
        ...


def render_textured(renderer: Renderer, target: np.ndarray) -> Rendered:
    """Any renderer's frame as a Rendered (no texture from one that cannot tell it)."""
    if isinstance(renderer, TexturedRenderer):
        return renderer.render_textured(target)
    return Rendered(renderer.render(target))


def render_stages(
    renderer: Renderer, textured: bool = True,
) -> tuple[Callable[[np.ndarray], object], Callable[[object], Rendered]]:
    """(begin, finish) of a renderer; one that does not split renders wholly in begin.
    textured=False: the caller has no use for the texture (a paste-back from the crop), so a
    renderer that does not split leaves it out (the warp's texture box rings the head where
    it shows its backdrop: 0.5 ms a frame at 512 to make and throw away)."""
    if isinstance(renderer, StagedRenderer):
        return renderer.begin, renderer.finish_textured
    if not textured:
        return (lambda target: Rendered(renderer.render(target))), _rendered
    return (lambda target: render_textured(renderer, target)), _rendered


def _rendered(begun: object) -> Rendered:
    assert isinstance(begun, Rendered)
    return begun


RendererFactory = Callable[[Portrait, RendererConfig], Renderer]
_REGISTRY: dict[str, RendererFactory] = {}


def register_renderer(name: str, factory: RendererFactory) -> None:
    _REGISTRY[name] = factory


def resolve_name(config: RendererConfig) -> str:
    """The renderer `auto` stands for with the installed models."""
    if config.name != "auto":
        return config.name
    from streamer.neural import neural_available

    return "neural" if neural_available(config) else "warp"


def create_renderer(portrait: Portrait, config: RendererConfig = RendererConfig()) -> Renderer:
    import streamer.neural  # noqa: F401  (registers "neural"; imports this module)

    config = replace(config, name=resolve_name(config))
    if config.name not in _REGISTRY:
        raise ModelFileError(f"unknown renderer {config.name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[config.name](portrait, config)


def asset_dir(config: RendererConfig) -> Path:
    if config.model_dir is not None:
        return Path(config.model_dir)
    return Path(str(resources.files("streamer") / "assets"))


def load_manifest_entry(model_dir: Path, key: str) -> dict:
    path = model_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        return manifest["models"][key]
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: model manifest missing; reinstall headcast") from exc
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: no valid entry for model {key!r}") from exc


def check_file(model_dir: Path, entry: dict) -> Path:
    """The path of a manifest entry's file, after checking it exists and its sha256."""
    return _checked_bytes(model_dir, entry)[0]


def _checked_bytes(model_dir: Path, entry: dict) -> tuple[Path, bytes]:
    path = model_dir / entry["file"]
    if not path.is_file():
        raise ModelFileError(
            f"{path}: model file missing; reinstall headcast or run `python -m export`"
        )
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        raise ModelFileError(
            f"{path}: sha256 does not match the manifest (corrupt or replaced file)"
        )
    return path, blob


def open_session(model_dir: Path, key: str, config: RendererConfig):  # type: ignore[no-untyped-def]
    """An onnxruntime session for a manifest entry, after checking hash, inputs and outputs."""
    import onnxruntime as ort

    entry = load_manifest_entry(model_dir, key)
    path, blob = _checked_bytes(model_dir, entry)
    half = key.endswith("_fp16")  # the generator export.half wrote
    session = ort.InferenceSession(blob, _session_options(config),
                                   providers=session_providers(config.providers, half))
    _check_signature(session, entry, path)
    return session, entry


def session_from_bytes(blob: bytes, config: RendererConfig):  # type: ignore[no-untyped-def]
    """An onnxruntime session for a model stored in a portrait file (a fine-tuned generator)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(blob, _session_options(config),
                                    providers=session_providers(config.providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise ModelFileError(f"the portrait's fine-tuned generator is unreadable ({exc})") from exc


def _session_options(config: RendererConfig):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.log_severity_level = 3
    # Idle workers must not spin: the frame loop runs numpy and OpenCV between runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _check_signature(session, entry: dict, path: Path) -> None:  # type: ignore[no-untyped-def]
    got_in = [(i.name, list(i.shape)) for i in session.get_inputs()]
    want_in = [(i["name"], i["shape"]) for i in entry["inputs"]]
    got_out = [o.name for o in session.get_outputs()]
    want_out = [o["name"] for o in entry["outputs"]]
    if got_in != want_in or got_out != want_out:
        raise ModelFileError(
            f"{path}: inputs/outputs {got_in} → {got_out} do not match the manifest"
        )


@dataclass(frozen=True)
class _Source:
    """One shot the warp can start from, with what the warp needs of it per portrait."""

    crop: np.ndarray  # (S, S, 3) uint8
    landmarks: np.ndarray  # (478, 3) float64 crop pixels
    fit: np.ndarray  # (510, 2) float32 normalized fitted points (warp_inputs.fit_points)
    own_mouth: np.ndarray | None  # (S, S) uint8 its open mouth, None when closed
    stretch: tuple[float, float]  # how far own_mouth is kept (own_mouth_kept)
    lids: np.ndarray  # warp_inputs.lids
    irises: np.ndarray  # warp_inputs.irises
    white: np.ndarray  # (3,) float32 BGR 0–255 its eyes' white (portrait.eye_white_colour)
    still: StillBackground | None  # leaves its background still; None: moves it with the head


class WarpRenderer:
    """The training-free generator (models/warp_generator.py) run by onnxruntime; its field
    and mouth layer are applied to the full-resolution crop with OpenCV. Each frame starts
    from the portrait's shot nearest the target (streamer/references.py): the rendered crop,
    or one of its references. as_trained=True renders the warp the neural generator was trained
    over (streamer/neural.py), until it is trained again: open mouths without the tongue, and
    the portrait's own open mouth stretched however wide the target opens."""

    def __init__(self, portrait: Portrait, config: RendererConfig = RendererConfig(),
                 as_trained: bool = False) -> None:
        size = portrait.crop_size
        self._tongue = not as_trained
        self._as_trained = as_trained
        kept = (np.inf, np.inf)
        self._stretch = kept if as_trained else config.own_mouth_stretch
        self._shadow_stretch = kept if as_trained else config.own_shadow_stretch
        self._still = config.still_background
        self._feature_shots = config.feature_shots
        self._session, entry = open_session(asset_dir(config), f"warp_{size}", config)
        if entry["dims"]["num_ctrl"] != W.NUM_CTRL:
            raise ModelFileError("warp model was exported for another control-point layout")
        self._size = size
        self.rebind(portrait)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        self._pixels = np.dstack([xs, ys])  # (S, S, 2) identity sampling map

    def rebind(self, portrait: Portrait) -> None:
        """Render another portrait of the same crop size with this session (training draws
        a new source frame per sample)."""
        assert portrait.crop_size == self._size, "rebind needs the same crop size"
        self._colors = portrait.colors.astype(np.float32)  # cached portrait tensor
        refs = zip(portrait.references, portrait.reference_landmarks, strict=True)
        # one mask per shot (crop, then references); none before version 6 or when turned off
        people = (list(portrait.person_masks) if self._still and len(portrait.person_masks)
                  else [None] * (1 + len(portrait.references)))
        self._shots = [self._source(portrait.crop, portrait.crop_landmarks, portrait.mouth_mask,
                                    people[0])]
        self._shots += [self._source(crop, lm, own_mouth_mask(self._size, lm), person)
                        for (crop, lm), person in zip(refs, people[1:], strict=True)]
        shots = self._shot_landmarks = np.stack([s.landmarks for s in self._shots])
        self._picker = ReferencePicker(shots)
        features = FEATURES if self._feature_shots and len(shots) > 1 else ()
        self._features = [(f, ReferencePicker(shots, self._favouring_the_face(f)))
                          for f in features]

    def _favouring_the_face(self, feature: Feature) -> Distance:
        """The feature's distances, the whole face's shot counted FEATURE_SWITCH IOD nearer:
        a feature leaves it (for a seam between two shots) only for one nearer by more than
        the warp's own error."""

        def distance(target: np.ndarray, shots: np.ndarray) -> np.ndarray:
            dist = feature.distance(target, shots)
            face = self._picker.current
            dist[face] = max(dist[face] - FEATURE_SWITCH, 0.0)
            return dist

        return distance

    def _source(self, crop: np.ndarray, landmarks: np.ndarray, mouth: np.ndarray,
                person: np.ndarray | None) -> _Source:
        size = self._size
        lm = landmarks.astype(np.float64)
        own = mouth if mouth.any() else None
        shadow = own is not None and own_mouth_is_shadow(crop, lm)
        return _Source(crop, lm, W.normalize(W.fit_points(lm, size), size), own,
                       self._shadow_stretch if shadow else self._stretch,
                       W.lids(lm, size), W.irises(lm, size),
                       eye_white_colour(crop, lm),
                       None if person is None else StillBackground(person, crop))

    @property
    def shot(self) -> int:
        """The shot the last frame was warped from, or faded towards (0: the rendered one,
        i: reference i)."""
        return self._picker.current

    def frame_inputs(self, target: np.ndarray, source: _Source | None = None
                     ) -> dict[str, np.ndarray]:
        s = self._size
        src = source if source is not None else self._shots[0]
        fit = W.normalize(W.target_fit_points(src.landmarks, target.astype(np.float64), s), s)
        return {
            "ctrl": fit[W.CTRL_INDEX],
            "tps": W.solve_tps(fit, src.fit),
            "mouth_poly": W.normalize(target[L.LIPS_INNER, :2], s),
            "mouth_frame": W.mouth_frame(target, s, self._tongue),
            "mouth_box": W.normalize(W.mouth_box(target, s).reshape(2, 2), s).reshape(4),
            "fine_boxes": W.normalize(W.fine_boxes(target, s).reshape(6, 2), s).reshape(3, 4),
            "colors": self._colors,
            "lids": np.stack([W.lids(target, s), src.lids], axis=1),
            "irises": np.stack([W.irises(target, s), src.irises], axis=1),
        }

    def render(self, target: np.ndarray) -> np.ndarray:
        return self._frame(target).crop()

    def render_textured(self, target: np.ndarray) -> Rendered:
        """The rendered crop and where it is the portrait's own texture (streamer.texture),
        so the paste-back can take those pixels from the full-resolution portrait."""
        frame = self._frame(target)
        return Rendered(frame.crop(), frame.texture())

    def render_with_validity(self, target: np.ndarray) -> tuple[Rendered, np.ndarray]:
        """render_textured() and where the crop is the portrait's own texture: (S, S) float32,
        1 where pixels were resampled from inside the crop, 0 where the synthesized mouth
        covers them or the map reached past the crop's edge."""
        frame = self._frame(target)
        return Rendered(frame.crop(), frame.texture()), frame.combine(self._validity)

    def _validity(self, part: _Part) -> np.ndarray:
        edge = self._size - 0.5
        inside = cv2.inRange(part.grid, (-0.5, -0.5), (edge, edge))  # 255 where x and y are in
        valid = inside.astype(np.float32) * np.float32(1.0 / 255.0)
        # The neural generator was trained to keep what is valid and draw the rest; the eyes'
        # white came after it, so to it the white is the warp's texture (it keeps it).
        # (the backdrop too is the warp's picture to it: as the spline's stretched wall was)
        for box, alpha in part.drawn(eyes=not self._as_trained, backdrop=False):
            x0, y0, x1, y1 = box
            valid[y0:y1, x0:x1] *= 1.0 - alpha
        return valid

    def _frame(self, target: np.ndarray) -> _Frame:
        """The shots of this frame, warped: the whole face's, and each feature's where it
        picks other shots (or weights) than the face does."""
        picks = self._picker.pick(target)
        parts: dict[int, _Part] = {}

        def warped(chosen: list[tuple[int, float]]) -> list[tuple[_Part, float]]:
            for i, _ in chosen:
                if i not in parts:
                    parts[i] = self._part(target, self._shots[i], i)
            return [(parts[i], w) for i, w in chosen]

        overlays = []
        for feature, picker in self._features:
            chosen = picker.pick(target)
            patch = feature.patch(target, self._size) if chosen != picks else None
            if patch is not None:
                overlays.append((warped(chosen), patch))
        return _Frame(warped(picks), tuple(overlays))

    def _part(self, target: np.ndarray, src: _Source, shot: int) -> _Part:
        grid, mouth, box, white, held = self._run(target, src)
        warped, out, alpha = composite_layers(src.crop, src.own_mouth, grid, mouth, box,
                                              src.stretch, None if held is None else held.warped)
        mouth_layer = None if alpha is None else (tuple(int(v) for v in box), alpha)
        if held is not None and held.strip is not None:  # the wall the head uncovered
            assert src.still is not None
            out = out.copy() if out is warped else out  # warped stays the texture
            lay_backdrop(out, held.strip, src.still.backdrop)
        eyes: list[tuple[Box, np.ndarray]] = []
        if (white > 1e-3).any():
            out = out.copy() if out is warped else out
            eyes = lay_eye_white(out, white, W.fine_boxes(target, self._size)[:2], src.white)
        return _Part(shot, out, warped, grid, mouth_layer, tuple(eyes),  # type: ignore[arg-type]
                     held)

    def sampling(self, target: np.ndarray, source: _Source | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the generator → (sampling map (S, S, 2), mouth layer, mouth box in pixels),
        from the source shot (default: the rendered one)."""
        return self._run(target, source)[:3]

    def _run(self, target: np.ndarray, source: _Source | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Held | None]:
        """sampling(), the eyes' white coverage (2, FH, FW) over their fine boxes, and the
        still background's hold (where the shot's backdrop shows, where the held map steps;
        None where the background moves with the head)."""
        flow, mouth, white = self._warp_map(target, source)
        src = source if source is not None else self._shots[0]
        held = None
        if src.still is not None:
            held = src.still.hold(flow, self._pixels)
            flow = held.grid
        return flow, mouth, W.mouth_box(target, self._size), white, held

    def _warp_map(self, target: np.ndarray, source: _Source | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The generator's sampling map (S, S, 2) before the still background's hold, its
        mouth layer and the eyes' white coverage."""
        assert self._session is not None, "renderer is closed"
        s = self._size
        flow, mouth, fine, white = self._session.run(None, self.frame_inputs(target, source))
        flow = cv2.resize(flow, (s, s), interpolation=cv2.INTER_LINEAR)
        for box, local in zip(W.fine_boxes(target, s), fine, strict=True):
            _blend_fine(flow, local, box)
        flow += self._pixels  # in place: the upsampled flow is this frame's own array
        return flow, mouth, white

    def least_scale(self, target: np.ndarray) -> float:
        """How far the warp towards target stretches the picture (streamer.turn_limits.
        least_scale of its sampling map), from the shot nearest target; where that shot's
        background is held still, over the person only (the map there is the identity, and
        the hold's step at the head's edge is no stretch)."""
        nearest = self._shots[int(np.argmin(shot_distances(target, self._shot_landmarks)))]
        grid = self._warp_map(target, nearest)[0]
        shown = nearest.still.moving(grid) if nearest.still is not None else None
        return least_scale(grid, shown)

    def close(self) -> None:
        self._session = None


def own_mouth_kept(grid: np.ndarray, stretch: tuple[float, float] = OWN_MOUTH_STRETCH
                   ) -> np.ndarray:
    """(h, w) float32 0–1: how much of the source's own open mouth the composite keeps at each
    pixel of a sampling map (h, w, 2): all where the map stretches the source down the image
    (the way a mouth opens) by at most stretch[0], none from stretch[1] on."""
    start, full = stretch
    if not np.isfinite(start):
        return np.ones(grid.shape[:2], np.float32)
    down = np.gradient(grid[..., 1], axis=0)  # source rows per output row
    ratio = 1.0 / np.maximum(down, 1e-3)
    return np.clip((full - ratio) / (full - start), 0.0, 1.0).astype(np.float32)


def composite(
    crop: np.ndarray,
    own_mouth: np.ndarray | None,
    grid: np.ndarray,
    mouth: np.ndarray,
    box: np.ndarray,
    stretch: tuple[float, float] = OWN_MOUTH_STRETCH,
) -> np.ndarray:
    """Resample the crop through the sampling map; lay the mouth interior over the opened
    mouth. crop (S, S, 3) uint8; own_mouth (S, S) uint8 or None; grid (S, S, 2) float32 source
    pixel of each output pixel; mouth (MH, MW, 4) over box (x0, y0, x1, y1 pixels); stretch:
    where own_mouth shows through the mouth layer (own_mouth_kept) → (S, S, 3) uint8.
    Matches models.warp_generator.composite."""
    return composite_layers(crop, own_mouth, grid, mouth, box, stretch)[1]


def composite_layers(
    crop: np.ndarray,
    own_mouth: np.ndarray | None,
    grid: np.ndarray,
    mouth: np.ndarray,
    box: np.ndarray,
    stretch: tuple[float, float] = OWN_MOUTH_STRETCH,
    warped: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """composite() in its layers → (the resampled crop, the composite, the mouth layer's
    coverage over box: (h, w) float32 0–1, or None where no mouth is drawn). warped: the crop
    resampled through grid, where the caller has it (streamer.still_background.Held)."""
    if warped is None:
        warped = cv2.remap(crop, grid, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = (int(v) for v in box)
    layer = cv2.resize(mouth, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    alpha = layer[:, :, 3]
    if not alpha.any():
        return warped, warped, None
    if own_mouth is not None:
        local = grid[y0:y1, x0:x1]
        own = cv2.remap(own_mouth, local, None, cv2.INTER_LINEAR).astype(np.float32)
        alpha = alpha - own * np.float32(1.0 / 255.0) * own_mouth_kept(local, stretch)
    alpha = np.clip(alpha, 0.0, 1.0)
    out = warped.copy()
    _lay_over(out, (x0, y0, x1, y1), alpha, layer[:, :, :3])
    return warped, out, alpha


def _lay_over(out: np.ndarray, box: Box, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Blend `colour` ((h, w, 3) or (3,), 0–255) over `out`'s box by alpha (h, w), in place."""
    x0, y0, x1, y1 = box
    region = out[y0:y1, x0:x1].astype(np.float32)
    a = alpha[:, :, None]
    out[y0:y1, x0:x1] = np.clip(region + a * (colour - region) + 0.5, 0, 255).astype(np.uint8)


def lay_backdrop(out: np.ndarray, strip: tuple[Box, np.ndarray], backdrop: np.ndarray
                 ) -> None:
    """Lay the shot's backdrop (S, S, 3) over `out` (S, S, 3) uint8 where the strip ((box,
    coverage (h, w) 0–1 there): Held.strip) says, in place."""
    (x0, y0, x1, y1), alpha = strip
    # the box rings the whole head, the strip is a band in it: taken pixel by pixel
    xs, ys = scattered.nonzero((alpha > 0).view(np.uint8))
    share = alpha[ys, xs][None]
    pixels = (ys + y0) * out.shape[1] + (xs + x0)
    mixed = cv2.blendLinear(scattered.take(backdrop, pixels)[None],
                            scattered.take(out, pixels)[None], share, 1.0 - share)
    scattered.put(out, pixels, mixed[0])


def lay_eye_white(out: np.ndarray, white: np.ndarray, boxes: np.ndarray, colour: np.ndarray
                  ) -> list[tuple[Box, np.ndarray]]:
    """Lay the eyes' white (coverage (2, FH, FW) 0–1 over the two eye boxes, pixels) in
    `colour` (3,) BGR over `out` (S, S, 3) uint8, in place → [(box, coverage (h, w))] for
    each eye that shows any."""
    layers: list[tuple[Box, np.ndarray]] = []
    for box, cover in zip(boxes, white, strict=True):
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 - x0 < 4 or y1 - y0 < 4 or not (cover > 1e-3).any():
            continue
        alpha = np.clip(cv2.resize(cover, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR),
                        0.0, 1.0)
        _lay_over(out, (x0, y0, x1, y1), alpha, colour)
        layers.append(((x0, y0, x1, y1), alpha))
    return layers


@dataclass(frozen=True)
class _Part:
    """One shot's share of a rendered frame."""

    shot: int  # 0: the rendered shot, i: reference i
    out: np.ndarray  # (S, S, 3) uint8 composite
    warped: np.ndarray  # (S, S, 3) uint8 the shot's crop resampled, before the mouth layer
    grid: np.ndarray  # (S, S, 2) float32 sampling map
    # what is drawn over the warped crop, as (box, coverage (h, w) float32 0–1): the mouth
    # layer (None where no mouth is drawn) and each eye's white, where it shows
    mouth: tuple[Box, np.ndarray] | None
    eyes: tuple[tuple[Box, np.ndarray], ...]
    # the still background's hold: the wall the head uncovered, where the backdrop is laid
    # (Held.strip), and where the map steps from the head to the still wall, the texture
    # resampled between two of its pixels is neither (Held.cut); None: no still background
    held: Held | None = None

    def drawn(self, eyes: bool = True, backdrop: bool = True) -> list[tuple[Box, np.ndarray]]:
        """The layers drawn over the warped crop: the backdrop's, the mouth's, and the eyes'
        whites."""
        strip = None if self.held is None else self.held.strip
        layers = [strip] if backdrop and strip is not None else []
        layers += [self.mouth] if self.mouth is not None else []
        return layers + (list(self.eyes) if eyes else [])


def _texture(parts: list[tuple[_Part, float]]) -> Texture | None:
    """The rendered shot's texture in a frame blended from `parts` (None when it has no share:
    references are kept at the crop only)."""
    for part, weight in parts:
        if part.shot != 0:
            continue
        texture = Texture(part.grid, part.warped)
        cut = None if part.held is None else part.held.cut
        for box, alpha in part.drawn() + ([cut] if cut is not None else []):
            texture = texture.covered(box, alpha)
        return texture if weight >= 1.0 else texture.scaled(weight)
    return None


@dataclass(frozen=True)
class _Frame:
    """One frame's warped shots: the whole face's (with cross-fade weights), and the shots
    of the features that pick others, each laid over its patch."""

    face: list[tuple[_Part, float]]
    overlays: tuple[tuple[list[tuple[_Part, float]], Patch], ...] = ()

    def combine(self, of: Callable[[_Part], np.ndarray]) -> np.ndarray:
        """A per-part image (the output, validity) blended over the frame's shots."""
        out = _blend([of(p) for p, _ in self.face], [w for _, w in self.face])
        if self.overlays and any(out is p.out for p, _ in self.face):
            out = out.copy()
        for parts, (box, alpha) in self.overlays:
            x0, y0, x1, y1 = box
            over = _blend([of(p)[y0:y1, x0:x1] for p, _ in parts], [w for _, w in parts])
            if out.dtype == np.uint8:  # a (S, S, 3) image
                _lay_over(out, box, alpha, over)
            else:  # a float (S, S) map
                out[y0:y1, x0:x1] += alpha * (over - out[y0:y1, x0:x1])
        return out

    def crop(self) -> np.ndarray:
        return self.combine(lambda p: p.out)

    def texture(self) -> Texture | None:
        """The rendered shot's texture, but where features take other shots."""
        texture = _texture(self.face)
        for _, patch in self.overlays:
            texture = None if texture is None else texture.covered(*patch)
        return texture


def _blend(images: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of same-shape images (uint8 or float32), in the first one's dtype."""
    if len(images) == 1:
        return images[0]
    total = sum(w * im.astype(np.float32) for im, w in zip(images, weights, strict=True))
    if images[0].dtype == np.uint8:
        return np.clip(total + 0.5, 0, 255).astype(np.uint8)
    return total.astype(images[0].dtype)


def _blend_fine(flow: np.ndarray, fine: np.ndarray, box: np.ndarray) -> None:
    """Lay a fine flow (FH, FW, 2) over its box of the upsampled flow, feathered at the box
    edge (both are the same spline, so the seam is a fraction of a pixel at most)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if w < 4 or h < 4:
        return
    local = cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    weight = np.minimum(_ramp(h)[:, None], _ramp(w)[None, :])
    # blendLinear divides by the weights' sum + 1e-5: 1e-4 px here, a third of numpy's time
    flow[y0:y1, x0:x1] = cv2.blendLinear(local, flow[y0:y1, x0:x1], weight, 1.0 - weight)


def _ramp(n: int, width: float = 4.0) -> np.ndarray:
    """(n,) float32 0 → 1 over `width` pixels from each end."""
    i = np.arange(n, dtype=np.float32) + 0.5
    return np.clip(np.minimum(i, n - i) / width, 0.0, 1.0)


register_renderer("warp", WarpRenderer)
