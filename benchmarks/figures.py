"""README pictures: portraits driven by real clips, next to the driver.

    python -m benchmarks.figures [--portraits mona_lisa einstein] [--clips ...]
        [--renderers warp neural] [--out docs]

For each clip, four frames are picked from the driver's own landmarks: the rest frame, the
widest mouth, the deepest blink and the largest head turn; each row shows the driver and
every portrait animated by it with each renderer as `headcast animate` renders it (the
track smoothed without lag, the targets refined against a first render; relative motion,
512 crop).

    python -m benchmarks.figures --detail [--detail-portraits photo_bw_young_man mona_lisa]

instead draws docs/full_detail.jpg: one frame (the clip's widest mouth) of portraits whose
face is larger than the crop, pasted back from the crop and with full detail (the texture
resampled from the portrait itself, streamer.paste), at the portrait's own pixels.

    python -m benchmarks.figures --region [--region-rows few_shot_woman_outdoor:8 ...]

draws docs/generator_region.jpg: held-out frames of K-shot portraits (benchmarks.kshot), the
training-free renderer next to the neural one with G's own blend mask and with G in its
region (streamer.neural.generator_region).

    python -m benchmarks.figures --own-mouth [--own-mouth-rows EAMM_14:man_glasses_office:70 ...]

draws docs/own_mouth.jpg: portraits that rest with their mouth open, opened wider by a clip;
their own mouth kept however far the warp stretches it, given way past 3 × (teeth or a
shadow), and what animate renders now.

    python -m benchmarks.figures --int8 [--int8-pairs mona_lisa:woman_long_expressive ...]

draws docs/int8_vs_fp32.jpg: the neural renderer with the float generator and with the int8
one the live commands run, and their difference × 8 (labelled with its mean over the
frame, in 0–255 levels).

    python -m benchmarks.figures --turns [--portraits mona_lisa einstein]

draws docs/turn_limits.jpg: the first clip's first face turned by set angles, each portrait
turned as far as asked and as animate turns it, held inside its turn limits
(streamer.turn_limits).

    python -m benchmarks.figures --neutral [--neutral-start 50] [--portraits mona_lisa einstein]

draws docs/rest_neutral.jpg: the first clip from a frame mid-blink and mid-word, and each
portrait driven by it with that first face as the neutral (animate --neutral first) and with
the first face at rest (the default, streamer.neutral).

    python -m benchmarks.figures --still [--still-pairs self:man_glasses_office ...]

draws docs/still_background.jpg: the training-free renderer with the background moved by
the spline and held still (RendererConfig.still_background), and their difference × 4.

    python -m benchmarks.figures --wall [--wall-pairs self:man_glasses_orange_wall ...]

draws docs/still_wall.jpg: the same at the two frames where the driver's head moved
farthest from where it started (the wall it uncovers shows the backdrop).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks import protocol as P
from benchmarks.quality import at_least, clip_file, default_data_dir, portrait_file
from streamer.output_file import folder_argument

TILE = 220  # tile height in pixels


def _pick(lms: list[np.ndarray | None]) -> list[tuple[str, int]]:
    ok = [i for i, lm in enumerate(lms) if lm is not None]
    mouth = {i: P.mouth_opening(lms[i]) for i in ok}
    eyes = {i: P.eye_openness(lms[i]) for i in ok}
    turn = {i: float(np.abs(P.head_rotation(lms[ok[0]], lms[i])[:2]).max()) for i in ok}
    return [("rest", ok[0]), ("mouth", max(mouth, key=mouth.get)),
            ("blink", min(eyes, key=eyes.get)), ("turn", max(turn, key=turn.get))]


def _tile(image: np.ndarray, lm: np.ndarray | None, label: str) -> np.ndarray:
    """Crop around the face (when found), scale to TILE high, write the label."""
    if lm is not None:
        x0, y0 = lm[:468, :2].min(0)
        x1, y1 = lm[:468, :2].max(0)
        c, half = (np.array([x0 + x1, y0 + y1]) / 2), 0.9 * max(x1 - x0, y1 - y0)
        h, w = image.shape[:2]
        a = np.clip((c - half).astype(int), 0, [w, h])
        b = np.clip((c + half).astype(int), 0, [w, h])
        image = image[a[1]:b[1], a[0]:b[0]]
    scale = TILE / image.shape[0]
    tile = cv2.resize(image, (max(1, round(image.shape[1] * scale)), TILE),
                      interpolation=cv2.INTER_AREA)
    for row, line in enumerate(label.split("\n")):  # each line shrunk to the tile's width
        width = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 2)[0][0]
        scale = 0.5 * min(1.0, (tile.shape[1] - 12) / max(width, 1))
        at = (6, 18 + 18 * row)
        cv2.putText(tile, line, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2)
        cv2.putText(tile, line, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1)
    return tile


def _driver(data: Path, clip: str, frames: int
            ) -> tuple[Path, list[np.ndarray], list[np.ndarray | None], list[tuple[str, int]]]:
    """The clip's first `frames` frames, their video-mode landmarks and the frames to show."""
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_video_frames

    path = clip_file(data, clip)
    video = list(read_video_frames(path, frames))
    with FaceTracker(video=True) as tracker:
        lms = [tracker.detect(f) for f in video]
    return path, video, lms, _pick(lms)


def _render_picks(portrait, path: Path, lms: list[np.ndarray | None], wanted: set[int],
                  renderer) -> dict[int, np.ndarray]:
    """The portrait driven by the clip as `animate` renders it → the wanted frames by index.
    renderer: a streamer.renderer.RendererConfig."""
    from streamer.animate import AnimateOptions
    from streamer.offline import offline_animation
    from streamer.video_io import video_fps

    anim, targets = offline_animation(portrait, lms,
                                      AnimateOptions(fps=video_fps(path), renderer=renderer))
    try:  # every frame in order, as animate does (a renderer with references keeps state)
        return {i: o for i, o in enumerate(anim.render_target(t) for t in targets)
                if i in wanted}
    finally:
        anim.close()


def _portrait(data: Path, name: str):
    from streamer.offline import enroll_shots
    from streamer.video_io import read_image

    return enroll_shots([read_image(portrait_file(data, name))])


def figure(data: Path, clip: str, portraits: list[str], frames: int,
           renderers: list[str]) -> np.ndarray:
    from streamer.renderer import RendererConfig
    from streamer.tracker import FaceTracker

    path, video, lms, picks = _driver(data, clip, frames)
    columns = [[_tile(video[i], lms[i], f"{clip}\nt={i} {what}") for what, i in picks]]
    wanted = {i for _, i in picks}
    for name in portraits:
        portrait = _portrait(data, name)
        for renderer in renderers:
            outs = _render_picks(portrait, path, lms, wanted, RendererConfig(renderer))
            label = f"{name} {renderer}"
            with FaceTracker(video=False) as still:
                columns.append([_tile(outs[i], still.detect(outs[i]), label) for _, i in picks])
    return _rows(columns)


TURNS = [(0.0, 0.0, 0.0), (20.0, 0.0, 0.0), (-20.0, 0.0, 0.0), (45.0, 0.0, 0.0),
         (-45.0, 0.0, 0.0), (0.0, 30.0, 0.0), (0.0, 0.0, 40.0), (30.0, 20.0, 0.0)]


def turn_figure(data: Path, clip: str, portraits: list[str]) -> np.ndarray:
    """Two rows per portrait, one column per turn (yaw/pitch/roll degrees; the first at
    rest) of the clip's first face, turned so about its skull: the portrait as the driver
    turns (MotionConfig.hold_turns off), and as animate turns it (held inside its turn
    limits)."""
    from dataclasses import replace

    from streamer import landmarks as L
    from streamer.animate import AnimateOptions, Animator
    from streamer.geometry import euler_to_rotation

    _, _, lms, _ = _driver(data, clip, 1)
    driver = lms[0]
    assert driver is not None, f"{clip}: no face in its first frame"
    centre = driver[L.RIGID].mean(axis=0)
    turned = [((driver - centre) @ euler_to_rotation(*t).T + centre).astype(np.float32)
              for t in TURNS]
    rows = []
    for name in portraits:
        portrait = _portrait(data, name)
        for hold in (False, True):
            options = AnimateOptions()
            options = replace(options, motion=replace(options.motion, hold_turns=hold))
            animator = Animator(portrait, options)
            tiles = []
            for turn, target in zip(TURNS, turned, strict=True):
                for _ in range(40):  # at rest until the neutral is taken, then settled
                    frame = animator.render_landmarks(driver if not animator.calibrated
                                                      else target)
                how = "held" if hold else "as asked"
                angles = "/".join(f"{a:g}" for a in turn)
                label = f"{name[:12]}, {how}" if not any(turn) else f"{how} {angles}"
                tiles.append(_tile(frame, portrait.landmarks, label))
            animator.close()
            rows.append(np.hstack(tiles))
    return _stack(rows)


def neutral_figure(data: Path, clip: str, start: int, portraits: list[str],
                   frames: int = 150) -> np.ndarray:
    """Columns: frames of the clip cut at `start` (its first, the face at rest that animate
    takes as the neutral for the first portrait, the widest mouth, the narrowest eyes after
    the neutral); rows: the driver, then each portrait with the first face as the neutral
    and with the face at rest."""
    from streamer.animate import AnimateOptions
    from streamer.neutral import rest_frame
    from streamer.offline import offline_animation
    from streamer.video_io import video_fps

    path, video, lms, _ = _driver(data, clip, start + frames)
    video, lms = video[start:], lms[start:]
    seen = [i for i, lm in enumerate(lms) if lm is not None]
    picks = [("first", seen[0])]
    rows = [[]]
    for name in portraits:
        portrait = _portrait(data, name)
        rest = rest_frame(lms, portrait.crop_landmarks)
        assert rest is not None
        if len(picks) == 1:
            later = [i for i in seen if i > rest + 10]
            picks += [("neutral", rest),
                      ("widest mouth", max(seen, key=lambda i: P.mouth_opening(lms[i]))),
                      ("narrowest eyes", min(later, key=lambda i: P.eye_openness(lms[i])))]
            picks.sort(key=lambda pick: pick[1])
        for neutral in ("first", "rest"):
            anim, targets = offline_animation(portrait, lms, AnimateOptions(
                fps=video_fps(path), neutral=neutral))  # type: ignore[arg-type]
            try:
                outs = [anim.render_target(t) for t in targets]
            finally:
                anim.close()
            label = f"{name[:12]}, neutral {'first' if neutral == 'first' else 'at rest'}"
            rows.append([_tile(outs[i], portrait.landmarks, label) for _, i in picks])
    rows[0] = [_tile(video[i], lms[i], f"t={i} {what}") for what, i in picks]
    return _stack([np.hstack(r) for r in rows])


def _rows(columns: list[list[np.ndarray]]) -> np.ndarray:
    return _stack([np.hstack([col[r] for col in columns]) for r in range(len(columns[0]))])


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of different widths one under the other, padded black on the right."""
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])


def int8_figure(data: Path, pairs: list[tuple[str, str]], frames: int) -> np.ndarray:
    """Rows: the picked frames of each (portrait, clip); columns: driver, the neural renderer
    with the float generator, with the int8 one (live's default), and |fp32 − int8| × 8."""
    from streamer.renderer import RendererConfig
    from streamer.tracker import FaceTracker

    blocks = []
    for name, clip in pairs:
        path, video, lms, picks = _driver(data, clip, frames)
        portrait = _portrait(data, name)
        wanted = {i for _, i in picks}
        outs = {p: _render_picks(portrait, path, lms, wanted, RendererConfig("neural", precision=p))
                for p in ("fp32", "int8")}
        columns: list[list[np.ndarray]] = [[], [], [], []]
        with FaceTracker(video=False) as still:
            for what, i in picks:
                lm = still.detect(outs["fp32"][i])
                diff = np.abs(outs["fp32"][i].astype(np.int16) - outs["int8"][i]) * 8
                columns[0].append(_tile(video[i], lms[i], f"{clip}\nt={i} {what}"))
                columns[1].append(_tile(outs["fp32"][i], lm, f"{name} fp32"))
                columns[2].append(_tile(outs["int8"][i], lm, f"{name} int8 (live)"))
                columns[3].append(_tile(np.clip(diff, 0, 255).astype(np.uint8), lm,
                                        f"diff x8, mean {diff.mean() / 8:.2f}"))
        blocks.append(_rows(columns))
    return _stack(blocks)


def _moved_picks(lms: list[np.ndarray | None], count: int = 2, apart: int = 15
                 ) -> list[tuple[str, int]]:
    """The `count` frames where the face stands farthest from where it stood in the first
    (its mean landmark, in IODs of the first face), at least `apart` frames from each other."""
    ok = [i for i, lm in enumerate(lms) if lm is not None]
    first = lms[ok[0]]
    assert first is not None
    unit = P.iod(first)
    away = {i: float(np.linalg.norm(lms[i][:, :2].mean(0) - first[:, :2].mean(0))) / unit
            for i in ok}  # type: ignore[index]
    picks: list[int] = []
    for i in sorted(away, key=away.get, reverse=True):  # type: ignore[arg-type]
        if all(abs(i - j) >= apart for j in picks):
            picks.append(i)
        if len(picks) == count:
            break
    return [(f"moved {away[i]:.2f} IOD", i) for i in sorted(picks)]


def still_figure(data: Path, pairs: list[tuple[str, str]], frames: int,
                 farthest: bool = False) -> np.ndarray:
    """Rows: the picked frames of each (portrait, clip), "self" for the clip's own first
    frame (farthest: the two where the driver's head moved farthest); columns: driver, the
    training-free renderer with the background moved by the spline (still_background=False),
    with it still (now), and |moved − still| × 4, each the portrait's crop square (where the
    warp acts)."""
    from streamer.offline import enroll_shots
    from streamer.renderer import RendererConfig

    blocks = []
    for name, clip in pairs:
        path, video, lms, picks = _driver(data, clip, frames)
        if farthest:
            picks = _moved_picks(lms)
        portrait = enroll_shots([video[0]]) if name == "self" else _portrait(data, name)
        label = "its frame 0" if name == "self" else name
        driver = "real" if name == "self" else clip[:18]
        wanted = {i for _, i in picks}
        outs = {still: _render_picks(portrait, path, lms, wanted,
                                     RendererConfig("warp", still_background=still))
                for still in (False, True)}
        square = _box_square(portrait.box)
        columns: list[list[np.ndarray]] = [[], [], [], []]
        for what, i in picks:
            moved, still = outs[False][i], outs[True][i]
            diff = np.clip(np.abs(moved.astype(np.int16) - still) * 4, 0, 255).astype(np.uint8)
            columns[0].append(square(video[i], f"{driver} t={i} {what}"))
            columns[1].append(square(moved, f"{label}: moved"))
            columns[2].append(square(still, f"{label}: still (now)"))
            columns[3].append(square(diff, "difference x4"))
        blocks.append(_rows(columns))
    return _stack(blocks)


def _box_square(box):  # streamer.portrait.CropBox -> (image, label) -> labelled tile
    """The crop box's square of an image (clipped to it), labelled at REGION_TILE²."""
    x0, y0, side = int(round(box.x0)), int(round(box.y0)), int(box.side)

    def square(image: np.ndarray, text: str) -> np.ndarray:
        return _label(image[max(y0, 0):y0 + side, max(x0, 0):x0 + side].copy(), text)

    return square


DETAIL_TILE = 420  # side of the full-detail figure's tiles, portrait pixels shown 1:1 or less
REGION_TILE = 300  # side of the generator-region figure's tiles


def detail_figure(data: Path, clip: str, portraits: list[tuple[str, int]]) -> np.ndarray:
    """One row per (portrait, crop size): driver, crop paste-back, full detail, each the
    same square around the face at the portrait's resolution (scaled to DETAIL_TILE)."""
    from streamer.animate import AnimateOptions
    from streamer.offline import offline_animation
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.renderer import RendererConfig
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_image, read_video_frames, video_fps

    path = clip_file(data, clip)
    video = list(read_video_frames(path, 300))
    with FaceTracker(video=True) as tracker:
        lms = [tracker.detect(f) for f in video]
    t = _pick(lms)[1][1]  # the widest mouth
    rows = []
    for name, size in portraits:
        image = read_image(portrait_file(data, name))
        portrait = enroll_images([image], EnrollConfig(crop_size=size))
        tiles = [_tile(video[t], lms[t], f"driver t={t}")]
        for detail in ("crop", "full"):
            options = AnimateOptions(fps=video_fps(path), renderer=RendererConfig("warp"),
                                     detail=detail)
            anim, targets = offline_animation(portrait, lms[: t + 1], options)
            out = anim.render_target(targets[t])
            anim.close()
            tiles.append(_face_square(out, portrait.landmarks,
                                      f"{name[:16]} {size} crop, {detail}"))
        rows.append(np.hstack([cv2.resize(tiles[0], (DETAIL_TILE * tiles[0].shape[1]
                                                     // tiles[0].shape[0], DETAIL_TILE)),
                               *tiles[1:]]))
    return _stack(rows)


def region_figure(data: Path, rows: list[tuple[str, int]]) -> np.ndarray:
    """One row per (clip, K), as benchmarks.kshot scores them: the held-out frame with the
    widest mouth; driver, training-free, the neural renderer with G's own blend mask and with
    G in its region (streamer.neural.generator_region)."""
    from benchmarks.kshot import SPLIT, KShotConfig, load_clip, make_portrait, track_all
    from benchmarks.quality import face_crop
    from streamer.paste import PasteBack
    from streamer.renderer import RendererConfig, create_renderer

    columns = [("training-free", "warp", "mouth"), ("neural, G's own mask", "neural", "all"),
               ("neural, G in its region", "neural", "mouth")]
    out = []
    for clip, k in rows:
        frames = load_clip(clip_file(data, clip))
        lms = track_all(frames)
        held = [i for i in range(int(SPLIT * len(frames)), len(frames)) if lms[i] is not None]
        t = max(held, key=lambda i: P.mouth_opening(lms[i]))
        portrait = make_portrait(frames, lms, k, KShotConfig(data=data), finetune=False)
        paste = PasteBack(portrait, "crop")
        tiles = [_label(face_crop(frames[t], lms[t]), f"{clip[:18]} t={t}")]
        for label, name, region in columns:
            renderer = create_renderer(portrait, RendererConfig(name, generator_region=region))
            for i in range(max(held[0], t - 10), t + 1):  # as a video plays: shots cross-fade
                if lms[i] is not None:
                    crop = renderer.render(portrait.box.to_crop(lms[i]))
            renderer.close()
            tiles.append(_label(face_crop(paste.paste(crop), lms[t]), f"K={k} {label}"))
        out.append(np.hstack(tiles))
    return np.vstack(out)


MOUTH_TILE = 240  # side of the own-mouth figure's tiles


def own_mouth_figure(data: Path, rows: list[tuple[str, str, int]]) -> np.ndarray:
    """One row per (portrait, clip, frame) as `animate` renders it with the training-free
    renderer: the driver's mouth; the portrait's own open mouth kept however far the warp
    stretches it ("kept"); given way to the drawn interior where stretched past 3 ×, teeth
    or not ("3x", until 2026-12-06); as now (RendererConfig: lips parted over a shadow give
    way from 1.5 ×)."""
    from streamer.animate import AnimateOptions
    from streamer.offline import offline_animation
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.renderer import OWN_MOUTH_STRETCH, RendererConfig
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_image, read_video_frames, video_fps

    kept = (float("inf"), float("inf"))
    variants = [("kept", RendererConfig("warp", own_mouth_stretch=kept, own_shadow_stretch=kept)),
                ("3x", RendererConfig("warp", own_shadow_stretch=OWN_MOUTH_STRETCH)),
                ("now", RendererConfig("warp"))]
    tracks: dict[str, tuple[list[np.ndarray], list[np.ndarray | None]]] = {}
    out = []
    for name, clip, t in rows:
        path = clip_file(data, clip)
        if clip not in tracks:
            frames = list(read_video_frames(path, 300))
            with FaceTracker(video=True) as tracker:
                tracks[clip] = frames, [tracker.detect(f) for f in frames]
        video, lms = tracks[clip]
        image = read_image(portrait_file(data, name))
        portrait = enroll_images([image], EnrollConfig(crop_size=512))
        tiles = [_mouth_tile(video[t], lms[t], f"{clip[:16]} t={t}")]
        for label, config in variants:
            anim, targets = offline_animation(portrait, lms, AnimateOptions(
                fps=video_fps(path), renderer=config, detail="crop"))
            frame = anim.render_target(targets[t])
            anim.close()
            box = portrait.box
            at = targets[t][:, :2] / box.scale + np.array([box.x0, box.y0])  # image pixels
            tiles.append(_mouth_tile(frame, at, f"{name[:14]}, {label}"))
        out.append(np.hstack(tiles))
    return np.vstack(out)


def _mouth_tile(image: np.ndarray, lm: np.ndarray | None, label: str) -> np.ndarray:
    """The square around the mouth, 1.2 IOD wide, at MOUTH_TILE², labelled."""
    assert lm is not None, "no face in the driver frame"
    centre = lm[[61, 291, 0, 17], :2].mean(axis=0)
    half = 0.6 * P.iod(lm)
    a = np.clip((centre - half).astype(int), 0, None)
    part = image[a[1] : int(centre[1] + half), a[0] : int(centre[0] + half)]
    tile = cv2.resize(part, (MOUTH_TILE, MOUTH_TILE), interpolation=cv2.INTER_CUBIC)
    return _caption(tile, label, 0.45)


def _label(tile: np.ndarray, label: str) -> np.ndarray:
    """The tile at REGION_TILE², labelled."""
    tile = cv2.resize(tile, (REGION_TILE, REGION_TILE), interpolation=cv2.INTER_AREA)
    return _caption(tile, label, 0.55)


def _caption(tile: np.ndarray, label: str, scale: float) -> np.ndarray:
    """Black text with a white outline at the tile's top left (drawn in place)."""
    cv2.putText(tile, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 3)
    cv2.putText(tile, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1)
    return tile


def _face_square(image: np.ndarray, lm: np.ndarray, label: str) -> np.ndarray:
    """The square from the eyebrows to the chin, DETAIL_TILE wide, labelled."""
    x0, y0 = lm[:468, :2].min(0)
    x1, y1 = lm[:468, :2].max(0)
    half = 0.5 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * half
    a = np.clip(np.array([cx - half, cy - half]).astype(int), 0, None)
    part = image[a[1] : int(cy + half), a[0] : int(cx + half)]
    tile = cv2.resize(part, (DETAIL_TILE, DETAIL_TILE), interpolation=cv2.INTER_AREA)
    return _caption(tile, label, 0.6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portraits", nargs="+", default=["mona_lisa", "einstein"])
    parser.add_argument("--clips", nargs="+",
                        default=["woman_long_expressive", "man_glasses_office"])
    parser.add_argument("--frames", type=at_least(2), default=300)
    parser.add_argument("--renderers", nargs="+", default=["warp", "neural"],
                        choices=("warp", "neural"))
    parser.add_argument("--out", type=folder_argument, default=Path("docs"))
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--detail", action="store_true",
                        help="draw the full-detail figure instead (first clip)")
    parser.add_argument("--detail-portraits", nargs="+",
                        default=["photo_bw_young_man:512", "mona_lisa:256"],
                        help="NAME:CROP pairs for --detail")
    parser.add_argument("--region", action="store_true",
                        help="draw the generator-region figure instead (K-shot clips)")
    parser.add_argument("--region-rows", nargs="+",
                        default=["few_shot_woman_outdoor:8", "man_glasses_lab:1"],
                        help="CLIP:K pairs for --region")
    parser.add_argument("--int8", action="store_true",
                        help="draw the int8-vs-fp32 figure instead")
    parser.add_argument("--int8-pairs", nargs="+",
                        default=["mona_lisa:woman_long_expressive", "einstein:man_glasses_office"],
                        help="PORTRAIT:CLIP pairs for --int8")
    parser.add_argument("--own-mouth", action="store_true",
                        help="draw the own-mouth figure instead")
    parser.add_argument("--own-mouth-rows", nargs="+",
                        default=["EAMM_14:man_glasses_office:70",
                                 "EAMM_14:woman_long_expressive:66",
                                 "photo_of_child_photo:woman_long_expressive:132",
                                 "EAMM_60:woman_long_expressive:57",
                                 "dreamtalk_menglu2:woman_long_expressive:57",
                                 "dreamtalk_menglu2:woman_long_expressive:165"],
                        help="PORTRAIT:CLIP:FRAME triples for --own-mouth")
    parser.add_argument("--still", action="store_true",
                        help="draw the still-background figure instead")
    parser.add_argument("--still-pairs", nargs="+",
                        default=["self:man_glasses_office", "einstein:woman_long_expressive"],
                        help="PORTRAIT:CLIP pairs for --still (PORTRAIT self: the clip's frame 0)")
    parser.add_argument("--wall", action="store_true",
                        help="draw the still-background figure at the frames where the "
                             "driver's head moved farthest instead")
    parser.add_argument("--wall-pairs", nargs="+",
                        default=["self:man_glasses_orange_wall", "einstein:man_glasses_orange_wall",
                                 "Thin-Plate-Spline-Motion-Model_source:man_glasses_orange_wall"],
                        help="PORTRAIT:CLIP pairs for --wall (PORTRAIT self: the clip's frame 0)")
    parser.add_argument("--neutral", action="store_true",
                        help="draw the neutral figure instead (the first clip, cut)")
    parser.add_argument("--neutral-start", type=int, default=50,
                        help="the frame the clip is cut at for --neutral")
    parser.add_argument("--turns", action="store_true",
                        help="draw the turn-limits figure instead (first clip's first face)")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    args.out.mkdir(parents=True, exist_ok=True)

    def split(specs: list[str]) -> list[list[str]]:
        return [spec.split(":") for spec in specs]

    # (file name, drawing, JPEG quality) for each figure asked for
    jobs: list[tuple[str, Callable[[], np.ndarray], int]]
    if args.neutral:
        jobs = [("rest_neutral.jpg", lambda: neutral_figure(
            data, args.clips[0], args.neutral_start, args.portraits), 88)]
    elif args.turns:
        jobs = [("turn_limits.jpg", lambda: turn_figure(data, args.clips[0], args.portraits),
                 88)]
    elif args.int8:
        pairs = [(n, c) for n, c in split(args.int8_pairs)]
        jobs = [("int8_vs_fp32.jpg", lambda: int8_figure(data, pairs, args.frames), 88)]
    elif args.still:
        pairs = [(n, c) for n, c in split(args.still_pairs)]
        jobs = [("still_background.jpg", lambda: still_figure(data, pairs, args.frames), 88)]
    elif args.wall:
        pairs = [(n, c) for n, c in split(args.wall_pairs)]
        jobs = [("still_wall.jpg", lambda: still_figure(data, pairs, args.frames, farthest=True),
                 88)]
    elif args.own_mouth:
        triples = [(n, c, int(t)) for n, c, t in split(args.own_mouth_rows)]
        jobs = [("own_mouth.jpg", lambda: own_mouth_figure(data, triples), 90)]
    elif args.region:
        rows = [(c, int(k)) for c, k in split(args.region_rows)]
        jobs = [("generator_region.jpg", lambda: region_figure(data, rows), 90)]
    elif args.detail:
        sizes = [(n, int(c)) for n, c in split(args.detail_portraits)]
        jobs = [("full_detail.jpg", lambda: detail_figure(data, args.clips[0], sizes), 90)]
    else:
        jobs = [(f"driven_{clip}.jpg",
                 lambda clip=clip: figure(data, clip, args.portraits, args.frames,
                                          args.renderers), 88) for clip in args.clips]
    for name, draw, quality in jobs:
        path = args.out / name
        cv2.imwrite(str(path), draw(), [cv2.IMWRITE_JPEG_QUALITY, quality])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
