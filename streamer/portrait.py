"""Portrait enrollment: everything that depends only on the portrait, computed once and
saved in a versioned `.headcast` file (an uncompressed .npz read with allow_pickle=False,
so loading a file never executes code).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer import landmarks as L
from streamer.errors import FaceTooSmallError, NoFaceError, PortraitFileError, not_a_file
from streamer.face_check import faces_seen_again
from streamer.faces import choose_face
from streamer.geometry import face_frame
from streamer.segment import PersonCheck, person_masks
from streamer.tracker import FaceTracker, TrackerConfig

FORMAT = "headcast-portrait"
VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)  # 1: before the neural model's embedding fields;
# 4: references; 6: person masks
MOUTH_COLORS_SINCE = 5  # older files hold fewer mouth colours (no tongue): recomputed on load
MIN_IOD_PX = 12.0  # below this the mesh itself is unreliable


@dataclass(frozen=True)
class EnrollConfig:
    crop_size: int = 512  # rendered crop side: 256 or 512
    crop_scale: float = 2.6  # crop side / face size, leaves room for hair and head motion
    crop_lift: float = 0.12  # crop centre above the face centre, × face size (hair > neck)
    face: int | None = None  # pictures with several faces: the N-th from the left (1-based)


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned square of the portrait image: crop pixel c ↔ image x0 + c·side/size."""

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.size / self.side

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """(N, ≥2) image pixels → crop pixels (z scaled alike when present)."""
        out = points.astype(np.float32).copy()
        out[:, 0] = (out[:, 0] - self.x0) * self.scale
        out[:, 1] = (out[:, 1] - self.y0) * self.scale
        if out.shape[1] > 2:
            out[:, 2:] *= self.scale
        return out

    def image_to_crop_matrix(self) -> np.ndarray:
        """2×3 matrix for cv2.warpAffine: crop integer pixel → image integer pixel
        (use with WARP_INVERSE_MAP); continuous coordinates have pixel centres at i + 0.5."""
        a = 1.0 / self.scale
        b = np.array([self.x0, self.y0]) + 0.5 * a - 0.5
        return np.array([[a, 0.0, b[0]], [0.0, a, b[1]]], np.float64)


@dataclass(frozen=True)
class Portrait:
    """One enrolled face. Arrays are read-only views into what was enrolled or loaded."""

    image: np.ndarray  # (H, W, 3) uint8 BGR, the full-resolution portrait
    landmarks: np.ndarray  # (478, 3) float32, image pixels
    box: CropBox  # where the rendered crop sits in the image
    crop: np.ndarray  # (S, S, 3) uint8 BGR
    crop_landmarks: np.ndarray  # (478, 3) float32, crop pixels
    mouth_mask: np.ndarray  # (S, S) uint8, 255 inside the portrait's own open mouth
    colors: np.ndarray  # (4, 3) float32 0–1 BGR: mouth cavity, deep cavity, teeth, tongue
    sources: tuple[str, ...]  # sha256 of each source image's pixels
    shots: np.ndarray = field(default_factory=lambda: np.zeros((0, 478, 3), np.float32))
    # (K, 478, 3) float32 image-pixel landmarks of every enrolled shot (the first is rendered)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    # (D,) float32 ê: the embedder's output averaged over the K shots; empty before embedding
    psi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    # (P,) float32 ψ = P·ê (or fine-tuned ψ'): the generator's AdaIN parameters
    generator: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    # ONNX bytes of a generator fine-tuned on this portrait's shots; empty: the shipped one
    references: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))
    # (R, S, S, 3) uint8: the other shots of the same camera, cut in `box` like `crop`; the
    # warp may start from any of them (streamer/references.py)
    reference_landmarks: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 478, 3), np.float32))
    # (R, 478, 3) float32 crop pixels: the references' landmarks
    person_masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.uint8))
    # (1 + R, S, S) uint8: where the crop, then each reference, shows the person
    # (streamer.segment; the renderer leaves the rest still); empty before version 6

    @property
    def crop_size(self) -> int:
        return self.box.size


def image_hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def crop_box(landmarks: np.ndarray, config: EnrollConfig) -> CropBox:
    x0, y0, x1, y1 = L.face_box(landmarks)
    size = max(x1 - x0, y1 - y0)
    side = config.crop_scale * size
    cx = 0.5 * (x0 + x1)
    cy = 0.5 * (y0 + y1) - config.crop_lift * size
    return CropBox(cx - side / 2, cy - side / 2, side, config.crop_size)


def cut_crop(image: np.ndarray, box: CropBox) -> np.ndarray:
    """(H, W, 3) image → (S, S, 3) crop; outside the image the border is replicated."""
    flags = cv2.WARP_INVERSE_MAP | (cv2.INTER_AREA if box.scale < 1 else cv2.INTER_CUBIC)
    return cv2.warpAffine(
        image,
        box.image_to_crop_matrix(),
        (box.size, box.size),
        flags=flags,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _fill(size: int, polygons: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    shift = 4  # sub-pixel polygon coordinates (fixed point, 1/16 px)
    pts = [np.round((p[:, :2] - 0.5) * (1 << shift)).astype(np.int32) for p in polygons]
    cv2.fillPoly(mask, pts, 255, lineType=cv2.LINE_AA, shift=shift)
    return mask


# Mouth-interior colours. The cavity is the lips' colour, nearly black: a mouth open wide is
# dark inside. A cavity as bright as the lips (the median inside MediaPipe's inner-lip contour
# on the shared clips' open mouths, teeth included: 0.93 of the lips) scored better on pixels
# but read as a closed, stained mouth: on the six portraits worst in cross-reenactment, driven
# by woman_long_expressive, MediaPipe followed the driver's mouth with Pearson r 0.58 on
# average; with this cavity 0.92 (benchmarks/quality.py; README, "Quality"). Teeth are white
# in the colour of the portrait's own light (the Mona Lisa's varnish gives ivory teeth where
# neutral grey looked blue next to it; a black-and-white photo's are grey). A mouth open past
# 0.06 IOD shows a tongue in its lower part (models/warp_generator.py shapes it), as the
# shared clips' open mouths do: the lips' colour, a little darker, with some of the face's
# (Einstein's lips, under the moustache, are so dark that a tongue of their colour read as a
# thick lower lip, mouth r 0.89 against 0.93 with this one).
CAVITY_RIM = 0.12
CAVITY_CORE = 0.06
TONGUE_SHADE = 0.85  # the tongue's colour, × the lips'
TONGUE_SKIN = 0.3  # and this much of the face's median colour
TEETH_TINT = 0.1  # how much of the lips' hue the teeth keep
HIGHLIGHT_QUANTILE = 90  # face pixels at least this bright (percentile) are its highlights
HIGHLIGHT_CHROMA = 0.5  # how much of the highlights' colour white keeps (skin is not white)
EYE_WHITE_MIN_PIXELS = 12  # fewer pixels between the lids, outside the irises: an eye shut
EYE_WHITE_DIM = 0.8  # an eye white's brightness against the face's white light, when unseen


def light_colour(crop: np.ndarray, lm: np.ndarray, face: np.ndarray | None = None
                 ) -> np.ndarray:
    """(3,) float32 BGR, brightest channel 1: white under the portrait's light, taken as its
    face highlights' colour at HIGHLIGHT_CHROMA of their saturation (a varnished painting's
    white is yellow, a black-and-white photo's grey). face: the face-oval mask, when the
    caller has it."""
    if face is None:
        face = _fill(crop.shape[0], [lm[L.FACE_OVAL]]) > 128
    pixels = crop[face].astype(np.float32) / 255.0
    if len(pixels) < 16:
        return np.ones(3, np.float32)
    lightness = pixels.mean(axis=1)
    colour = np.median(pixels[lightness >= np.percentile(lightness, HIGHLIGHT_QUANTILE)], axis=0)
    colour = colour / max(float(colour.max()), 1e-6)
    return (1.0 - HIGHLIGHT_CHROMA * (1.0 - colour)).astype(np.float32)


def eye_white_colour(crop: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(3,) float32 BGR 0–255: the white of the portrait's eyes, for where an eye opened
    wider than the portrait's shows more of it (models/warp_generator.py, eye_white): the
    brighter quarter of the pixels between its lids, outside the irises. Eyes shown nearly
    shut have too few; their white is the portrait's light (light_colour) at EYE_WHITE_DIM."""
    size = crop.shape[0]
    mask = _fill(size, [lm[L.RIGHT_EYE], lm[L.LEFT_EYE]])
    for centre, *ring in (L.RIGHT_IRIS, L.LEFT_IRIS):
        radius = float(np.linalg.norm(lm[ring, :2] - lm[centre, :2], axis=1).mean())
        x, y = (int(round(v)) for v in lm[centre, :2])
        cv2.circle(mask, (x, y), int(radius * 1.15 + 1), 0, -1)
    pixels = crop[mask > 128].astype(np.float32)
    if len(pixels) < EYE_WHITE_MIN_PIXELS:
        return (light_colour(crop, lm) * 255.0 * EYE_WHITE_DIM).astype(np.float32)
    lightness = pixels.mean(axis=1)
    return np.median(pixels[lightness >= np.percentile(lightness, 75)], axis=0).astype(np.float32)


def mouth_colors(crop: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(4, 3) float32 0–1 BGR: cavity rim, cavity core, teeth, tongue — from the portrait's
    lips and light, so a painting's mouth keeps the painting's palette."""
    size = crop.shape[0]
    lips = (_fill(size, [lm[L.LIPS_OUTER]]) & ~_fill(size, [lm[L.LIPS_INNER]])) > 128
    pixels = crop.astype(np.float32) / 255.0
    lip = np.median(pixels[lips], axis=0) if lips.any() else np.array([0.35, 0.35, 0.55])
    face = _fill(size, [lm[L.FACE_OVAL]]) > 128
    teeth = (1.0 - TEETH_TINT) * light_colour(crop, lm, face) + TEETH_TINT * lip
    skin = np.median(pixels[face], axis=0) if face.any() else lip
    tongue = (1.0 - TONGUE_SKIN) * lip * TONGUE_SHADE + TONGUE_SKIN * skin
    rows = [lip * CAVITY_RIM, lip * CAVITY_CORE, teeth, tongue]
    return np.clip(np.stack(rows), 0.0, 0.95).astype(np.float32)


OWN_MOUTH_GAP = 0.03  # IOD: a portrait's lips further apart than this show its own opening


def own_mouth_mask(size: int, lm: np.ndarray) -> np.ndarray:
    """The portrait's open-mouth interior (empty when the lips touch)."""
    if L.mouth_gap(lm) < OWN_MOUTH_GAP:
        return np.zeros((size, size), np.uint8)
    return _fill(size, [lm[L.LIPS_INNER]])


# An own open mouth shows teeth where at least this share of it is teeth-like: lighter than
# TEETH_LIGHTER × the lips, or lighter than TEETH_LIGHT × them and less coloured than
# TEETH_CHROMA × them (grey teeth under red lips; not on a grey picture, where the lips' chroma
# × TEETH_CHROMA is under TEETH_GREY). The shared portraits that rest with the mouth open
# (256 / 512 crop): EAMM_60 0.10 / 0.16, Thin-Plate-Spline-Motion-Model_source 0.41 / 0.41,
# dreamtalk_menglu2 0.45 / 0.49 (teeth); EAMM_14 0.00 / 0.01 and photo_of_child_photo 0.00
# (lips parted over a shadow).
# woman_long_expressive's small openings: 0.06–0.21 where a few teeth show (frames 48, 282,
# 297), 0.00–0.03 where none do (66, 210, 222): her teeth are as coloured as her pale lips.
TEETH_SHARE = 0.05
TEETH_LIGHTER = 1.1
TEETH_LIGHT = 0.85
TEETH_CHROMA = 0.6
TEETH_GREY = 4.0  # Lab chroma units
# An own opening narrower than this (IOD) that shows no teeth is lips parted over a shadow.
# Wider, what shows is a mouth's inside, teeth or not (the tongue, the dark of the mouth).
SHADOW_GAP = 0.08


def own_teeth_share(crop: np.ndarray, lm: np.ndarray) -> float:
    """0–1: how much of the portrait's own mouth opening (own_mouth_mask) looks like teeth;
    0 for a closed mouth."""
    size = crop.shape[0]
    inner = own_mouth_mask(size, lm) > 128
    lips = (_fill(size, [lm[L.LIPS_OUTER]]) > 128) & ~inner
    if not inner.any() or not lips.any():
        return 0.0
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB).astype(np.float32)
    lip = np.median(lab[lips], axis=0)
    inside = lab[inner]
    chroma = np.hypot(inside[:, 1] - 128.0, inside[:, 2] - 128.0)
    limit = TEETH_CHROMA * float(np.hypot(lip[1] - 128.0, lip[2] - 128.0))
    teeth = inside[:, 0] > TEETH_LIGHTER * lip[0]
    if limit >= TEETH_GREY:
        teeth |= (inside[:, 0] > TEETH_LIGHT * lip[0]) & (chroma < limit)
    return float(teeth.mean())


def own_mouth_is_shadow(crop: np.ndarray, lm: np.ndarray) -> bool:
    """Whether the portrait's own mouth opening is lips parted over a shadow: open (it has an
    own_mouth_mask), narrower than SHADOW_GAP and showing no teeth (own_teeth_share)."""
    gap = L.mouth_gap(lm)
    return OWN_MOUTH_GAP <= gap < SHADOW_GAP and own_teeth_share(crop, lm) < TEETH_SHARE


def _frontalness(lm: np.ndarray) -> float:
    return float(abs(face_frame(lm).axes[2, 2]))  # |z·view| = 1 when facing the camera


def enroll_images(
    images: list[np.ndarray],
    config: EnrollConfig = EnrollConfig(),
    tracker_config: TrackerConfig = TrackerConfig(),
    skip_faceless: bool = False,
    render_first: bool = False,
    landmarks: list[np.ndarray | None] | None = None,
    names: Sequence[str] | None = None,
) -> Portrait:
    """Enroll 1..K BGR images of one face. The most frontal is rendered (the first, with
    render_first); all are kept as shots, and those of the rendered image's size (frames of
    one camera) also as references to warp from. skip_faceless: drop images without a face
    (frames of a video) instead of failing. landmarks: one (478, 3) array (or None: no face)
    per image, tracked by the caller (frames of a video, tracked in video mode as the driver
    is, so a shot and a driver frame showing the same face get the same landmarks); None:
    each image is tracked here on its own, a face kept only where it is found again mirrored
    and turned (streamer.face_check: the mesh finds "faces" on animals), and where it shows
    several faces on people (streamer.segment.PersonCheck) config.face chooses
    (streamer.faces.choose_face). names:
    what the messages call each image (its file; default "portrait image N").

    Raises NoFaceError (no face in an image), FaceChoiceError (several faces of about one
    size, none chosen) and FaceTooSmallError."""
    if not images:
        raise NoFaceError("no portrait image given")
    if config.crop_size not in (256, 512):
        raise ValueError("crop_size must be 256 or 512")
    found: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    names = list(names) if names else [f"portrait image {i}" for i in range(1, len(images) + 1)]
    if landmarks is None:
        with FaceTracker(tracker_config, video=False) as tracker, PersonCheck() as check:
            landmarks = [choose_face(check.persons(image, faces_seen_again(tracker, image)),
                                     name, config.face)
                         for image, name in zip(images, names, strict=True)]
    elif len(landmarks) != len(images):
        raise ValueError("one landmark array (or None) per image is needed")
    for image, lm, name in zip(images, landmarks, names, strict=True):
        if lm is None and skip_faceless:
            continue
        if lm is None:
            raise NoFaceError(
                f"no human face found in {name}: use a photo or painting "
                "with one clearly visible face, eyes open, looking roughly at the camera"
            )
        if L.iod(lm) < MIN_IOD_PX:
            raise FaceTooSmallError(
                f"the face in {name} is too small ({L.iod(lm):.0f} px between "
                f"the eyes, {MIN_IOD_PX:.0f} needed): use a larger or closer-cropped image"
            )
        found.append(lm)
        kept.append(image)
    if not kept:
        raise NoFaceError(f"no human face found in any of the {len(images)} frames")
    images = kept
    best = 0 if render_first else max(range(len(images)), key=lambda i: _frontalness(found[i]))
    order = [best] + [i for i in range(len(images)) if i != best]
    image, lm = images[best], found[best]
    box = crop_box(lm, config)
    crop = cut_crop(image, box)
    crop_lm = box.to_crop(lm)
    same_camera = [i for i in order[1:] if images[i].shape == image.shape]
    refs = _references(images, found, same_camera, box)
    return Portrait(
        image=image,
        landmarks=lm,
        box=box,
        crop=crop,
        crop_landmarks=crop_lm,
        mouth_mask=own_mouth_mask(config.crop_size, crop_lm),
        colors=mouth_colors(crop, crop_lm),
        sources=tuple(image_hash(images[i]) for i in order),
        shots=np.stack([found[i] for i in order]).astype(np.float32),
        person_masks=person_masks(np.concatenate([crop[None], refs["references"]]),
                                  np.concatenate([crop_lm[None], refs["reference_landmarks"]])),
        **refs,
    )


def _references(images: list[np.ndarray], found: list[np.ndarray], picks: list[int],
                box: CropBox) -> dict[str, np.ndarray]:
    """The picked shots cut in the rendered shot's box, with their crop-pixel landmarks."""
    s = box.size
    crops = [cut_crop(images[i], box) for i in picks]
    lms = [box.to_crop(found[i]) for i in picks]
    return {
        "references": np.stack(crops) if crops else np.zeros((0, s, s, 3), np.uint8),
        "reference_landmarks": np.stack(lms) if lms else np.zeros((0, 478, 3), np.float32),
    }


def crop_portrait(crop: np.ndarray, crop_landmarks: np.ndarray) -> Portrait:
    """A portrait that is exactly a crop (S, S, 3) uint8 with its (478, 3) landmarks in crop
    pixels: the training pipeline and fine-tuning warp from such frames."""
    size = crop.shape[0]
    return Portrait(
        image=crop,
        landmarks=crop_landmarks,
        box=CropBox(0.0, 0.0, float(size), size),
        crop=crop,
        crop_landmarks=crop_landmarks,
        mouth_mask=own_mouth_mask(size, crop_landmarks),
        colors=mouth_colors(crop, crop_landmarks),
        sources=(),
        shots=crop_landmarks[None],
    )


_ARRAYS = ("image", "landmarks", "crop", "crop_landmarks", "mouth_mask", "colors", "shots")
_OPTIONAL = ("embedding", "psi", "generator",  # absent from version 1 files
             "references", "reference_landmarks")  # absent before version 4
# Person masks are 0 or 255 (streamer.segment), stored 8 pixels a byte: a 32-shot file at the
# 512 crop would carry 8.4 MB of them, and loading it took 21–62 ms against 11–27 without.
_PERSON_BITS = "person_bits"  # absent before version 6


def save_portrait(portrait: Portrait, path: str | Path) -> None:
    header = {
        "format": FORMAT,
        "version": VERSION,
        "box": [portrait.box.x0, portrait.box.y0, portrait.box.side, portrait.box.size],
        "sources": list(portrait.sources),
    }
    arrays = {name: getattr(portrait, name) for name in _ARRAYS + _OPTIONAL}
    arrays[_PERSON_BITS] = np.packbits(portrait.person_masks >= 128, axis=-1)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    # made whole in memory, then written: a write that fails (a full disk) fails in this
    # write, not inside numpy's zip file, which is left open and complains when collected
    made = io.BytesIO()
    np.savez(made, **arrays)
    with open(path, "wb") as f:
        f.write(made.getbuffer())


def _check_sizes(path: Path) -> None:
    """Raise ValueError where an array in the file unpacks to more than the file holds:
    save_portrait stores its arrays as they are, so a larger one is a compressed bomb (a few
    MB that unpack to gigabytes), not a portrait."""
    total = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > total:
                raise ValueError(f"{info.filename} unpacks to {info.file_size / 1e6:.0f} MB in "
                                 f"a file of {total / 1e6:.1f} MB")


def load_portrait(path: str | Path) -> Portrait:
    """Read a .headcast file. Raises PortraitFileError when it is not a valid portrait file."""
    path = Path(path)
    if not path.is_file():
        raise PortraitFileError(f"{not_a_file(path)} (create one with `headcast enroll`)")
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            if header.get("format") != FORMAT:
                raise PortraitFileError(f"{path}: not a headcast portrait file")
            if header.get("version") not in READABLE_VERSIONS:
                raise PortraitFileError(
                    f"{path}: portrait file version {header.get('version')} is not supported "
                    f"(this headcast reads version {VERSION}); enroll the image again"
                )
            arrays = {name: data[name] for name in _ARRAYS}
            arrays.update({name: data[name] for name in _OPTIONAL if name in data.files})
            if _PERSON_BITS in data.files:
                size = arrays["crop"].shape[1]
                bits = np.unpackbits(data[_PERSON_BITS], axis=-1, count=size)
                shots = 1 + len(arrays.get("references", ()))
                if bits.size and bits.shape != (shots, size, size):
                    raise ValueError(f"person masks {bits.shape} for {shots} shots of {size}²")
                arrays["person_masks"] = bits * np.uint8(255)
    except PortraitFileError:
        raise
    except (
        OSError,
        EOFError,  # an empty file
        ValueError,
        MemoryError,  # an array's header says more than there is (the read would then fail)
        KeyError,
        zipfile.BadZipFile,
        json.JSONDecodeError,
        UnicodeDecodeError,
    ) as exc:
        raise PortraitFileError(f"{path}: corrupt or not a headcast portrait file ({exc})") from exc
    x0, y0, side, size = header["box"]
    if header["version"] < MOUTH_COLORS_SINCE:
        arrays["colors"] = mouth_colors(arrays["crop"], arrays["crop_landmarks"])
    for a in arrays.values():
        a.flags.writeable = False
    return Portrait(
        box=CropBox(x0, y0, side, int(size)), sources=tuple(header["sources"]), **arrays
    )
