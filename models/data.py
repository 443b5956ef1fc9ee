"""Meta-learning episodes from prepared videos (models/prepare.py).

An episode (Zakharov et al. 2019, sec. 3.2) is one video i, K random frames for the embedder
and another frame of it as the target. The generator's extra input is made exactly as the
runtime makes it (streamer/neural.py): the first of the K frames is the portrait, warped by the
training-free renderer (onnxruntime) onto the target's landmarks at the full crop, then the
face window around the target is cut; every shot is seen through its own face window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from streamer import landmarks as L
from streamer.neural import (
    ShotCrop,
    Window,
    face_window,
    generator_region,
    landmark_input,
    to_input,
    window_shot,
)
from streamer.portrait import crop_portrait
from streamer.references import shot_distances
from streamer.renderer import RendererConfig, WarpRenderer


@dataclass(frozen=True)
class PreparedVideo:
    name: str
    identity: str
    frames: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    landmarks: np.ndarray  # (N, 478, 3) float32 crop pixels

    def shot(self, i: int) -> ShotCrop:
        return ShotCrop(np.ascontiguousarray(self.frames[i]), self.landmarks[i])


def load_prepared(roots: list[Path], exclude_identities: tuple[str, ...] = (),
                  only_identities: tuple[str, ...] | None = None) -> list[PreparedVideo]:
    """Every prepared video under the roots, filtered by identity."""
    videos = []
    held = 0  # videos left out by identity
    for root in roots:
        index = root / "index.json"
        if not index.is_file():
            raise FileNotFoundError(f"{root}: no prepared videos here (no index.json): make "
                                    "them with `python -m models.prepare CLIPS " f"{root}`")
        for entry in json.loads(index.read_text())["videos"]:
            identity = entry["identity"]
            if identity in exclude_identities or (
                    only_identities is not None and identity not in only_identities):
                held += 1
                continue
            folder = root / entry["name"]
            videos.append(PreparedVideo(
                name=entry["name"],
                identity=identity,
                frames=np.load(folder / "frames.npy", mmap_mode="r"),
                landmarks=np.load(folder / "landmarks.npy"),
            ))
    if not videos:
        because = f" ({held} left out by identity, e.g. val_identities)" if held else ""
        raise FileNotFoundError(f"no prepared videos under {[str(r) for r in roots]}{because}")
    return videos


def mouth_region(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(1, S, S) float32, 1 in the protocol's mouth box (lips padded by 0.25 IOD)."""
    pts = landmarks[L.LIPS_OUTER + L.LIPS_INNER, :2]
    pad = 0.25 * L.iod(landmarks)
    x0, y0 = np.clip(np.floor(pts.min(0) - pad), 0, size).astype(int)
    x1, y1 = np.clip(np.ceil(pts.max(0) + pad), 0, size).astype(int)
    region = np.zeros((1, size, size), np.float32)
    region[:, y0:y1, x0:x1] = 1.0
    return region


class WarpInputs:
    """The runtime's warp of a source shot onto target landmarks, with one reusable
    onnxruntime session (built lazily, so each DataLoader worker gets its own)."""

    def __init__(self) -> None:
        self._renderer: WarpRenderer | None = None

    def __call__(self, source: ShotCrop, target_lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        portrait = crop_portrait(source.crop, source.landmarks)
        if self._renderer is None:
            # the warp the neural renderer feeds G (streamer/neural.py), as G was trained over it
            self._renderer = WarpRenderer(portrait, RendererConfig(threads=1), as_trained=True)
        else:
            self._renderer.rebind(portrait)
        rendered, valid = self._renderer.render_with_validity(target_lm)
        return rendered.crop, valid


def generator_arrays(
    source: ShotCrop, target_lm: np.ndarray, warp: WarpInputs, size: int = 256,
    soften: bool = False,
) -> tuple[Window, dict[str, np.ndarray]]:
    """G's inputs for one target at the network's side, as the runtime makes them: the source
    shot warped onto target_lm (478, 3) crop pixels, cut to the target's face window →
    (the window, {landmarks, warp, valid, mouth, region}). soften passes the warp through half
    resolution, as the runtime's 256 crops are. region is where the runtime lets G's mask
    draw (streamer.neural.generator_region)."""
    warped, valid = warp(source, target_lm)
    window = face_window(target_lm, source.crop.shape[0], size)
    lm = window.landmarks(target_lm)
    warped = window.cut(warped)
    valid = window.cut(valid).astype(np.float32)
    if soften:
        half = cv2.resize(warped, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
        warped = cv2.resize(half, (size, size), interpolation=cv2.INTER_LINEAR)
    return window, {
        "landmarks": landmark_input(lm, size),
        "warp": to_input(warped),
        "valid": valid[None],
        "mouth": mouth_region(lm, size),
        "region": generator_region(lm, valid)[None],
    }


def sample_tensors(
    shots: list[ShotCrop], target: ShotCrop, warp: WarpInputs, size: int = 256,
    flip: bool = False, soften: bool = False,
) -> dict[str, torch.Tensor]:
    """One training sample at the network's side: shots[0] is warped onto the target. flip
    mirrors every image of the sample (after warping, so the warp itself is the runtime's);
    soften as for generator_arrays."""
    window, arrays = generator_arrays(shots[0], target.landmarks, warp, size, soften)
    seen = [window_shot(s, size) for s in shots]
    arrays |= {
        "shots": np.stack([to_input(s.crop) for s in seen]),
        "shot_landmarks": np.stack([landmark_input(s.landmarks, size) for s in seen]),
        "target": to_input(window.cut(target.crop)),
    }
    if flip:
        arrays = mirrored(arrays)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def mirrored(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A sample's arrays (..., H, W) mirrored left to right."""
    return {k: np.ascontiguousarray(v[..., ::-1]) for k, v in arrays.items()}


class Episodes(torch.utils.data.Dataset):
    """Random episodes: index → (video i, K shots, target). Deterministic per (seed, index)."""

    def __init__(self, videos: list[PreparedVideo], k: int, length: int, seed: int = 0,
                 min_gap: int = 5, size: int = 256, soften: float = 0.3,
                 nearest: float = 0.0) -> None:
        """nearest: fraction of episodes whose warp starts from the shot nearest the target
        (as the runtime's references do with K shots of one camera), the rest from a shot
        at least min_gap frames away (one portrait, another moment)."""
        self.videos, self.k, self.length, self.seed, self.min_gap = videos, k, length, seed, min_gap
        self.size, self.soften, self.nearest = size, soften, nearest
        weights = np.array([np.sqrt(len(v.frames)) for v in videos])  # long clips not dominant
        self._p = weights / weights.sum()
        self._warp = WarpInputs()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        vi = int(rng.choice(len(self.videos), p=self._p))
        video = self.videos[vi]
        n = len(video.frames)
        picks = rng.choice(n, size=min(self.k + 1, n), replace=False)
        target = int(picks[-1])
        shots = [int(p) for p in picks[:-1]]
        if self.nearest > 0 and rng.random() < self.nearest:  # source: the nearest shot
            gaps = shot_distances(video.landmarks[target], video.landmarks[shots])
            source = shots[int(np.argmin(gaps))]
            shots.remove(source)
            shots.insert(0, source)
        else:  # a different moment than the target
            far = [p for p in shots if abs(p - target) >= self.min_gap]
            if far:
                shots.remove(far[0])
                shots.insert(0, far[0])
        sample = sample_tensors([video.shot(i) for i in shots], video.shot(target), self._warp,
                                self.size, flip=bool(rng.random() < 0.5),
                                soften=bool(rng.random() < self.soften))
        sample["video"] = torch.tensor(vi)
        sample["frames"] = torch.tensor([*shots, target])  # warp source first, target last
        return sample
