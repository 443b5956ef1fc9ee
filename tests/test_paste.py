"""streamer/paste.py and streamer/texture.py: the crop back into the portrait, its texture at
the portrait's full resolution."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from benchmarks import protocol as P
from streamer.paste import DETAIL_MIN_SCALE, PasteBack
from streamer.renderer import WarpRenderer
from streamer.texture import Rendered, Texture
from tests.helpers import open_mouth


@pytest.fixture(scope="module")
def big_portrait(astronaut_bgr):
    """The astronaut at twice her size, enrolled at the 256 crop: the face is ~2x the crop."""
    from streamer.portrait import EnrollConfig, enroll_images

    big = cv2.resize(astronaut_bgr, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    return enroll_images([big], EnrollConfig(crop_size=256))


def _sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _pasted(portrait, target, detail):
    renderer = WarpRenderer(portrait)
    try:
        return PasteBack(portrait, detail).paste(renderer.render_textured(target))
    finally:
        renderer.close()


def test_auto_detail_when_the_face_is_larger_than_the_crop(big_portrait, astronaut_portrait):
    box = big_portrait.box
    assert box.side >= DETAIL_MIN_SCALE * box.size
    assert PasteBack(big_portrait).full_detail
    assert not PasteBack(big_portrait, "crop").full_detail
    small = astronaut_portrait.box
    assert small.side < DETAIL_MIN_SCALE * small.size
    assert not PasteBack(astronaut_portrait).full_detail
    assert PasteBack(astronaut_portrait, "full").full_detail


def test_full_detail_gives_the_portrait_back_where_nothing_moves(big_portrait):
    image, target = big_portrait.image, big_portrait.crop_landmarks
    full = _pasted(big_portrait, target, "full")
    crop = _pasted(big_portrait, target, "crop")
    s_full = P.image_scores(image, full, big_portrait.landmarks)
    s_crop = P.image_scores(image, crop, big_portrait.landmarks)
    # Down to the 256 crop and up again loses the photo's detail; full detail does not.
    assert s_full.face_psnr > 45.0 and s_full.face_ssim > 0.99
    assert s_full.face_psnr > s_crop.face_psnr + 8.0 and s_crop.face_ssim < 0.98


def test_a_large_photo_keeps_its_detail(data_dir):
    """The shared 2048² photo: its face is 2.6x the 512 crop, so auto takes full detail."""
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.video_io import read_image

    image = read_image(data_dir / "portraits" / "photo_bw_young_man.jpg")
    portrait = enroll_images([image], EnrollConfig(crop_size=512))
    assert PasteBack(portrait).full_detail
    target = portrait.crop_landmarks
    s_full = P.image_scores(image, _pasted(portrait, target, "auto"), portrait.landmarks)
    s_crop = P.image_scores(image, _pasted(portrait, target, "crop"), portrait.landmarks)
    assert s_full.face_ssim > 0.99 and s_crop.face_ssim < 0.85


def test_full_detail_keeps_the_drawn_mouth(big_portrait):
    """The synthesized mouth interior comes from the crop; the skin around it from the photo."""
    target = open_mouth(big_portrait.crop_landmarks, 0.3)
    full = _pasted(big_portrait, target, "full")
    crop = _pasted(big_portrait, target, "crop")
    box = big_portrait.box
    # Down the middle of the opened mouth (target crop pixels → image pixels) both show the
    # same interior: teeth, the dark cavity, the tongue.
    up, low = target[13, :2], target[14, :2]
    down = np.array([up + v * (low - up) for v in np.linspace(0.1, 0.9, 17)])
    xy = (down / box.scale + np.array([box.x0, box.y0])).astype(int)
    inside_full = np.array([full[y - 1 : y + 2, x - 3 : x + 4].mean() for x, y in xy])
    inside_crop = np.array([crop[y - 1 : y + 2, x - 3 : x + 4].mean() for x, y in xy])
    assert np.abs(inside_full - inside_crop).mean() < 6.0
    lip = int(big_portrait.landmarks[0, 1])  # the upper lip's middle, image y
    assert inside_full.min() < 0.6 * big_portrait.image[lip - 2 : lip + 3, xy[0, 0]].mean()
    # The rest of the face is the photo's own texture: sharper than the crop's.
    face = P.face_box(big_portrait.landmarks, full.shape)
    assert _sharpness(full, face) > 1.5 * _sharpness(crop, face)


def test_rendered_texture_adds_up_to_the_crop(astronaut_portrait):
    renderer = WarpRenderer(astronaut_portrait)
    target = open_mouth(astronaut_portrait.crop_landmarks, 0.3)
    rendered = renderer.render_textured(target)
    renderer.close()
    texture = rendered.texture
    assert texture is not None and not texture.empty_box
    x0, y0, x1, y1 = texture.box
    outside = np.ones(rendered.crop.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    # Outside its box the crop is the texture alone; inside, the drawn mouth replaces it.
    assert np.array_equal(rendered.crop[outside], texture.warped[outside])
    assert texture.weight.min() < 0.05 and texture.weight.max() <= 1.0


def test_texture_under_layers_and_blends():
    s = 8
    texture = Texture(np.zeros((s, s, 2), np.float32), np.zeros((s, s, 3), np.uint8))
    assert texture.empty_box
    one = texture.covered((1, 1, 3, 3), np.full((2, 2), 0.5, np.float32))
    two = one.covered((2, 2, 5, 4), np.full((2, 3), 0.5, np.float32))
    assert two.box == (1, 1, 5, 4)
    weight = np.ones((s, s), np.float32)
    weight[1:3, 1:3] *= 0.5
    weight[2:4, 2:5] *= 0.5
    assert np.allclose(two.weight, weight[1:4, 1:5])
    half = two.scaled(0.5)
    assert half.box == (0, 0, s, s) and np.allclose(half.weight, 0.5 * weight)


def test_a_crop_without_texture_is_pasted_as_before(astronaut_portrait):
    paste = PasteBack(astronaut_portrait, "full")
    crop = astronaut_portrait.crop
    assert np.array_equal(paste.paste(Rendered(crop)), paste.paste(crop))


@pytest.mark.parametrize("renderer_name", ["warp", "neural"])
def test_animator_pastes_full_detail(big_portrait, renderer_name):
    from streamer.animate import AnimateOptions, Animator
    from streamer.neural import neural_available
    from streamer.renderer import RendererConfig

    config = RendererConfig(name=renderer_name)
    if renderer_name == "neural" and not neural_available(config):
        pytest.skip("the neural model is not installed")
    scores = {}
    for detail in ("full", "crop"):
        anim = Animator(big_portrait, AnimateOptions(renderer=config, detail=detail))
        out = anim.render_target(big_portrait.crop_landmarks)
        anim.close()
        scores[detail] = P.image_scores(big_portrait.image, out, big_portrait.landmarks)
    # Where the generator keeps the warp, the portrait's pixels come back.
    assert scores["full"].face_ssim > scores["crop"].face_ssim + 0.01
    assert scores["full"].face_psnr > scores["crop"].face_psnr + 2.0


def test_a_thin_band_is_pasted_as_its_whole_box_would_be(big_portrait):
    """The head moved sideways and open-mouthed: the texture gives way over the wall it
    uncovered (a band ringing the head) and the drawn mouth. The paste-back takes only the
    portrait pixels near that band; the same texture with every weight a hair under 1 takes
    the whole box to the portrait's pixels. Both paste the same picture, and where neither
    the band nor the mouth reaches, the portrait's own texture alone."""
    p = big_portrait
    target = open_mouth(p.crop_landmarks, 0.3) + np.float32([12, 0, 0])
    rendered = WarpRenderer(p).render_textured(target)
    texture = rendered.texture
    assert texture is not None
    own = texture.weight < 1.0
    assert 0.02 < own.mean() < 0.33  # a band: the paste-back takes it pixel by pixel
    paste = PasteBack(p, "full")
    band = paste.paste(rendered)
    whole = paste.paste(Rendered(rendered.crop, texture.scaled(1.0 - 1e-6)))
    diff = np.abs(band.astype(int) - whole).max(axis=2)
    assert diff.max() <= 6 and (diff > 1).mean() < 1e-4
    # what the band changed: the backdrop and the mouth, a sizeable share of the face's box
    plain = paste.paste(Rendered(rendered.crop, replace(texture, box=(0, 0, 0, 0))))
    changed = np.abs(band.astype(int) - plain).max(axis=2) > 8
    x0, y0, x1, y1 = P.face_box(p.landmarks, band.shape)
    assert changed.sum() > 2000 and changed[y0:y1, x0:x1].mean() > 0.01


def test_the_crop_fades_into_the_portrait_over_the_seam(astronaut_portrait):
    """A white crop pasted back: white inside its footprint, the portrait itself outside it,
    and across the seam (FEATHER of the crop's side) a steady fade from one to the other."""
    from streamer.paste import FEATHER

    p = astronaut_portrait
    out = PasteBack(p, "crop").paste(np.full_like(p.crop, 255))
    box = p.box
    x0, y0 = int(np.ceil(box.x0)), int(np.ceil(box.y0))
    x1, y1 = int(box.x0 + box.side), int(box.y0 + box.side)
    assert x0 > 0  # the footprint's left edge is inside the picture (its top is not)
    ramp = int(np.ceil(FEATHER * box.size / box.scale))
    inner = out[max(y0 + ramp + 1, 0) : y1 - ramp - 1, x0 + ramp + 1 : x1 - ramp - 1]
    assert inner.size > 10000 and inner.min() == 255
    outside = np.ones(out.shape[:2], bool)
    outside[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = False
    assert outside.sum() > 10000 and np.array_equal(out[outside], p.image[outside])
    # along the middle row, from the footprint's left edge inwards: the crop's share grows
    row = (y0 + y1) // 2
    share = ((out[row, x0 : x0 + ramp + 2].astype(float) - p.image[row, x0 : x0 + ramp + 2])
             / np.maximum(255.0 - p.image[row, x0 : x0 + ramp + 2], 1.0)).mean(axis=1)
    assert share[0] < 0.15 and share[-1] > 0.97
    assert np.all(np.diff(share) > -0.02)  # no step back
