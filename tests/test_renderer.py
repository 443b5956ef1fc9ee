import json
import shutil

import cv2
import numpy as np
import pytest

from streamer import landmarks as L
from streamer.errors import ModelFileError
from streamer.references import FADE_FRAMES
from streamer.renderer import (
    OWN_MOUTH_STRETCH,
    RendererConfig,
    WarpRenderer,
    create_renderer,
    own_mouth_kept,
    register_renderer,
)
from streamer.video_io import read_image
from streamer.warp_inputs import fine_boxes, mouth_box
from tests.helpers import open_mouth


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def test_identity_target_renders_the_portrait(astronaut_portrait):
    r = WarpRenderer(astronaut_portrait)
    out = r.render(astronaut_portrait.crop_landmarks)
    assert out.shape == astronaut_portrait.crop.shape and out.dtype == np.uint8
    assert _psnr(out, astronaut_portrait.crop) > 38


def test_open_mouth_gets_a_dark_interior_with_a_tongue(astronaut_portrait):
    """Down the middle of a wide-open mouth: upper teeth, a dark cavity, then a tongue in the
    lips' hue, redder than the teeth."""
    r = WarpRenderer(astronaut_portrait)
    target = open_mouth(astronaut_portrait.crop_landmarks, 0.35)
    out = r.render(target)
    up, low = target[13, :2], target[14, :2]

    def at(v: float) -> np.ndarray:  # mean BGR of a 3×5 patch at v of the way down the opening
        x, y = (up + v * (low - up)).astype(int)
        return out[y - 1 : y + 2, x - 2 : x + 3].reshape(-1, 3).astype(float).mean(axis=0)

    cx = int(up[0])
    lips = astronaut_portrait.crop[int(target[0, 1]) - 2 : int(target[0, 1]) + 3, cx - 4 : cx + 5]
    lip = lips.reshape(-1, 3).astype(float).mean(axis=0)
    teeth, cavity, tongue = at(0.12), at(0.3), at(0.55)
    assert cavity.mean() < 0.5 * lip.mean()
    assert teeth.mean() > 2.0 * cavity.mean() and tongue.mean() > 1.5 * cavity.mean()
    assert np.argmax(tongue) == np.argmax(lip)  # the lips' hue

    def redness(bgr: np.ndarray) -> float:
        return (bgr[2] - bgr[0]) / bgr.mean()

    assert redness(teeth) < 0.8 * redness(tongue)
    # Without the tongue (the warp the neural generator was trained over) it stays dark.
    plain = WarpRenderer(astronaut_portrait, as_trained=True).render(target)
    x, y = (up + 0.55 * (low - up)).astype(int)
    assert plain[y - 1 : y + 2, x - 2 : x + 3].astype(float).mean() < 0.5 * tongue.mean()
    # Outside the head nothing moves: the crop's corners are untouched.
    assert np.array_equal(out[:4, :4], astronaut_portrait.crop[:4, :4])
    assert np.array_equal(out[-4:, -4:], astronaut_portrait.crop[-4:, -4:])


def test_runtime_composite_matches_torch_reference(astronaut_portrait):
    torch = pytest.importorskip("torch")
    from models.warp_generator import composite

    r = WarpRenderer(astronaut_portrait)
    target = open_mouth(astronaut_portrait.crop_landmarks, 0.3)
    grid, mouth, box = r.sampling(target)
    got = r.render(target).astype(int)
    s = astronaut_portrait.crop_size
    want = composite(
        torch.from_numpy(astronaut_portrait.crop),
        torch.from_numpy(np.ascontiguousarray(astronaut_portrait.mouth_mask)),
        torch.from_numpy(grid),
        torch.from_numpy(mouth),
        torch.from_numpy(box.astype(np.float32) * (2.0 / s) - 1.0),
        OWN_MOUTH_STRETCH,
    ).numpy().astype(int)
    diff = np.abs(got - want)
    assert np.percentile(diff, 99.5) <= 2 and diff.mean() < 0.3


def test_own_mouth_kept_up_to_a_stretch_then_drawn():
    """Kept where the map stretches the source down the image by up to stretch[0], not from
    stretch[1]; sideways stretch does not count."""
    start, full = OWN_MOUTH_STRETCH
    ys, xs = np.mgrid[0:20, 0:30].astype(np.float32)

    def kept(down: float, across: float = 1.0, stretch=OWN_MOUTH_STRETCH) -> np.ndarray:
        return own_mouth_kept(np.dstack([xs / across, ys / down]), stretch)

    assert (kept(1.0) == 1.0).all() and (kept(0.99 * start) == 1.0).all()
    assert np.allclose(kept((start + full) / 2), 0.5, atol=1e-5)
    assert (kept(1.01 * full) == 0.0).all() and (kept(3 * full) == 0.0).all()
    assert (kept(1.0, across=3 * full) == 1.0).all()
    assert (kept(3 * full, stretch=(np.inf, np.inf)) == 1.0).all()


def test_a_mouth_opened_far_past_the_portraits_own_is_drawn(data_dir):
    """EAMM_14 rests 0.06 IOD open, teeth showing. Opened a little, its own mouth stretches
    with the lips; opened to 0.2 IOD, the drawn interior takes the place of its own where the
    warp stretches it most (kept, its teeth smeared into vertical streaks), except in the warp
    the neural generator was trained over. Share of the opening drawn: 0.01 both at 0.08 IOD;
    0.49 against 0.08 at 0.2 IOD."""
    import cv2

    from streamer.portrait import EnrollConfig, enroll_images

    portrait = enroll_images([cv2.imread(str(data_dir / "portraits" / "EAMM_14.png"))],
                             EnrollConfig(crop_size=256))
    rest = portrait.crop_landmarks
    assert 0.04 < L.mouth_gap(rest) < 0.08 and portrait.mouth_mask.any()

    def drawn(renderer: WarpRenderer, target: np.ndarray) -> float:
        """Share of the target's mouth opening covered by the drawn interior."""
        _, valid = renderer.render_with_validity(target)
        opening = np.zeros(valid.shape, np.uint8)
        cv2.fillPoly(opening, [target[L.LIPS_INNER, :2].astype(np.int32)], 1)
        return 1.0 - float(valid[opening > 0].mean())

    ours, as_trained = WarpRenderer(portrait), WarpRenderer(portrait, as_trained=True)
    little = open_mouth(rest, 0.02)
    assert drawn(ours, little) < 0.05 and drawn(as_trained, little) < 0.05
    wide = open_mouth(rest, 0.15)
    assert drawn(ours, wide) > 0.4 and drawn(as_trained, wide) < 0.15


def test_an_own_opening_without_teeth_gives_way_sooner(data_dir):
    """photo_of_child_photo rests with her lips parted over a shadow (0.044 IOD, no teeth):
    opened to 0.1 IOD, kept until 3 × its shadow was a tall blurred band of lip colour;
    now the drawn interior shows an open mouth there. EAMM_60 (teeth showing) keeps its own
    teeth so far. Share of the opening drawn at the 256 crop: the child 0.56, against 0.13
    with her shadow kept as teeth are; EAMM_60 0.01."""
    from streamer.portrait import EnrollConfig, enroll_images, own_mouth_is_shadow

    def drawn(config: RendererConfig, name: str, gap: float) -> tuple[float, bool]:
        portrait = enroll_images([read_image(next((data_dir / "portraits").glob(name + ".*")))],
                                 EnrollConfig(crop_size=256))
        rest = portrait.crop_landmarks
        renderer = WarpRenderer(portrait, config)
        target = open_mouth(rest, gap - L.mouth_gap(rest))
        _, valid = renderer.render_with_validity(target)
        opening = np.zeros(valid.shape, np.uint8)
        cv2.fillPoly(opening, [target[L.LIPS_INNER, :2].astype(np.int32)], 1)
        return 1.0 - float(valid[opening > 0].mean()), own_mouth_is_shadow(portrait.crop, rest)

    as_teeth = RendererConfig("warp", own_shadow_stretch=OWN_MOUTH_STRETCH)
    child, shadow = drawn(RendererConfig("warp"), "photo_of_child_photo", 0.1)
    child_before, _ = drawn(as_teeth, "photo_of_child_photo", 0.1)
    assert shadow and child > 0.4 and child_before < 0.2
    teeth, shadow = drawn(RendererConfig("warp"), "EAMM_60", 0.1)
    assert not shadow and teeth < 0.1


def _spline_map(renderer, target, size):
    """The generator's spline evaluated at every pixel of the crop: (S, S, 2) source pixels."""
    import torch

    from export.onnx_export import warp_dims
    from models.warp_generator import WarpGenerator

    feeds = renderer.frame_inputs(target)
    pix = np.mgrid[0:size, 0:size][::-1].reshape(2, -1).T.astype(np.float32)
    g = torch.from_numpy((pix + 0.5) / size * 2 - 1)
    gen = WarpGenerator(warp_dims(size))
    x, y = g[:, 0], g[:, 1]
    with torch.no_grad():
        flow = gen._flow(x, y, torch.from_numpy(feeds["ctrl"]), torch.from_numpy(feeds["tps"]),
                         gen._hold(x, y))
    return pix.reshape(size, size, 2) + torch.stack(flow, 1).numpy().reshape(size, size, 2)


@pytest.mark.parametrize("size", [256, 512])
def test_sampling_map_matches_the_dense_spline(astronaut_bgr, size):
    """The runtime's map (coarse flow upsampled, fine flows over the mouth) is within a
    fraction of a pixel (at the 256 crop's scale) of the spline evaluated at every pixel,
    away from the eyes (which are mapped lid to lid, see test_shut_lids_cover_the_eye)."""
    pytest.importorskip("torch")
    from streamer.portrait import EnrollConfig, enroll_images
    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=size))
    r = WarpRenderer(portrait, RendererConfig(still_background=False))  # the spline's own map
    target = open_mouth(portrait.crop_landmarks, 0.3)
    grid, _, _ = r.sampling(target)
    err = np.linalg.norm(grid - _spline_map(r, target, size), axis=2) * (256 / size)
    boxes = fine_boxes(target, size)
    x0, y0, x1, y1 = boxes[2]  # the mouth
    inner = err[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4]
    assert np.percentile(inner, 50) < 0.1 and np.percentile(inner, 95) < 0.5
    for x0, y0, x1, y1 in boxes[:2]:
        err[y0:y1, x0:x1] = 0.0
    assert np.percentile(err, 99) < 0.5


def _source_at(grid: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The sampling map (pixel centres at integers) at a landmark-convention position (pixel
    centres at i + 0.5), bilinear → source (x, y) in the landmark convention."""
    import cv2

    x, y = (np.asarray(point, np.float32) - 0.5).reshape(2)
    return 0.5 + np.array([cv2.getRectSubPix(np.ascontiguousarray(grid[..., i]), (1, 1), (x, y))
                           [0, 0] for i in range(2)])


@pytest.mark.parametrize("size", [256, 512])
def test_shut_lids_cover_the_eye(astronaut_bgr, size):
    """A spline cannot shut an eye: its lids end up a pixel apart on the target but must map
    to lids 10 pixels apart on the portrait, so it squeezed the eye and the iris stayed in
    view. Just above a shut target's lid line the map must sample the portrait's upper lid
    (skin, not eye), just below it the lower lid; at rest it is the identity."""
    from streamer.portrait import EnrollConfig, enroll_images
    from tests.helpers import close_eyes

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=size))
    src = portrait.crop_landmarks
    r = WarpRenderer(portrait)
    grid, _, _ = r.sampling(close_eyes(src))
    px = size / 256  # a pixel of the 256 crop
    for upper, lower in ((159, 145), (386, 374)):  # mid-lid points, right and left eye
        line = close_eyes(src)[upper, :2]
        assert _source_at(grid, line - [0, 1.5 * px])[1] <= src[upper, 1]
        assert _source_at(grid, line + [0, 1.5 * px])[1] >= src[lower, 1]
    rest, _, _ = r.sampling(src)
    ys, xs = np.mgrid[0:size, 0:size]
    identity = np.dstack([xs, ys]).astype(np.float32)
    for x0, y0, x1, y1 in fine_boxes(src, size)[:2]:
        err = np.abs(rest - identity)[y0:y1, x0:x1]
        assert np.percentile(err, 99) < 0.5 * size / 256


@pytest.mark.parametrize("size", [256, 512])
def test_eye_shortcuts_stay_within_a_fraction_of_a_pixel(astronaut_bgr, size):
    """For speed the generator runs its spline on every other fine cell of the eye boxes and
    maps the lid skin's far ends at a few columns per eye (WarpDims.eye_div, end_samples):
    its eye flows stay within a fraction of a pixel (of the 256 crop) of the same generator
    with the spline at every cell and every column, for eyes open, half shut and shut on a
    turned head."""
    torch = pytest.importorskip("torch")
    from dataclasses import replace

    from export.onnx_export import warp_dims
    from models.warp_generator import WarpGenerator
    from streamer.portrait import EnrollConfig, enroll_images
    from tests.helpers import close_eyes, rotate_yaw

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=size))
    src = portrait.crop_landmarks
    r = WarpRenderer(portrait)
    fast = WarpGenerator(warp_dims(size))
    exact = WarpGenerator(replace(warp_dims(size), eye_div=1, end_samples=8 * size + 1))
    shut = close_eyes(src)
    for eyes in (src, 0.5 * (src + shut), shut):
        target = rotate_yaw(open_mouth(eyes, 0.2), 12.0)
        feeds = {k: torch.from_numpy(v) for k, v in r.frame_inputs(target).items()}
        with torch.no_grad():
            got, want = fast(**feeds)[2][:2].numpy(), exact(**feeds)[2][:2].numpy()
        assert np.abs(want).max() > 5.0 * size / 256  # the eyes did move
        err = np.linalg.norm(got - want, axis=-1) * (256 / size)
        assert np.percentile(err, 99) < 0.1 and err.max() < 0.5


def test_eyes_follow_the_gaze(astronaut_portrait):
    """Irises moved sideways by a tenth of the eye's width: the portrait's iris is drawn
    under the target's iris, the lids stay put."""
    src = astronaut_portrait.crop_landmarks
    target = src.copy()
    for iris, (a, b) in ((slice(468, 473), (33, 133)), (slice(473, 478), (362, 263))):
        axis = src[b, :2] - src[a, :2]  # along the eye, towards the image's right
        shift = 0.1 * np.linalg.norm(axis)
        target[iris, :2] += shift * axis / np.linalg.norm(axis)
    grid, _, _ = WarpRenderer(astronaut_portrait).sampling(target)
    for centre in (468, 473):
        assert np.linalg.norm(_source_at(grid, target[centre, :2]) - src[centre, :2]) < 0.2 * shift
    for lid, side in ((159, -1), (145, 1), (386, -1), (374, 1)):  # the skin beside each lid
        skin = src[lid, :2] + [0.0, 1.5 * side]
        assert np.linalg.norm(_source_at(grid, skin) - skin) < 0.25


def test_a_widened_eye_lifts_its_lashes_and_shows_its_white_below_them(astronaut_portrait):
    """Eyes opened wide (upper lids raised by a quarter of the eye's width): between the lids
    the portrait's eye keeps its scale, so the iris stays round
    (stretched lid to lid, it grew into a tall oval); the upper lid takes its margin, the
    lash line, up with it, and below the lashes lies the portrait's own white (left behind,
    the lash line crossed the eye as a second lid, and MediaPipe read the eye as half shut).
    Head turns up to ±20° show none (test_head_turns_..._do_not_fold: the map under the white
    is not one-to-one)."""
    pytest.importorskip("torch")  # the margins are the torch generator's (models/)
    import cv2

    from models.warp_generator import LID_MARGIN
    from streamer.portrait import eye_white_colour
    from tests.helpers import widen_eyes

    src = astronaut_portrait.crop_landmarks  # the 256 crop: eyes 17 px wide, lashes 1–2 px
    r = WarpRenderer(astronaut_portrait)
    target = widen_eyes(src, 0.25)
    grey = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).astype(np.float32)
            for im in (r.render(src), r.render(target))]
    white = float(np.mean(eye_white_colour(astronaut_portrait.crop, src)))
    for centre, upper, lower, (a, b) in ((468, 159, 145, (33, 133)), (473, 386, 374, (362, 263))):
        x = int(src[centre, 0])
        iris = grey[0][int(src[centre, 1]), x]
        dark = 0.5 * (iris + white)  # darker than this: iris
        width = float(np.linalg.norm(src[b, :2] - src[a, :2]))
        lashes = (0.0, LID_MARGIN * width)  # the target's lashes are above the iris's top
        heights = [int((g[int(upper_y + m):int(np.ceil(src[lower, 1])), x] < dark).sum())
                   for g, upper_y, m in zip(grey, (src[upper, 1], target[upper, 1]), lashes,
                                            strict=True)]
        assert heights[0] >= 4 and heights[1] <= 1.2 * heights[0]  # the iris is as high
        rows = slice(int(target[upper, 1]) - 2, int(np.ceil(src[lower, 1])))
        for side in (-0.3, 0.3):  # beside the iris
            col = int(src[centre, 0] + side * width)
            lash = [rows.start + int(np.argmin(g[rows, col])) for g in grey]  # the darkest row
            assert lash[1] <= lash[0] - 2  # the lash line rose with the lid, as dark as it was
            shade = [float(g[row, col]) for g, row in zip(grey, lash, strict=True)]
            assert shade[1] <= shade[0] + 0.25 * (white - shade[0])
            below = grey[1][lash[1] + 2:lash[0] + 2, col]
            assert below.size >= 2 and below.mean() > iris + 0.6 * (white - iris)  # white


def test_a_widened_eye_keeps_its_iris_in_place_and_shows_white_below_it(astronaut_bgr):
    """Lids opened both ways (upper raised by 0.25, lower dropped by 0.15 of the eye's width,
    irises where they were): the eyeball stays where the iris is, so the iris is drawn from
    the portrait's iris (hung from the lower lid, it dropped with the lid), and between the
    eye and the dropped lower lid the white shows."""
    pytest.importorskip("torch")  # the margins are the torch generator's (models/)
    import cv2

    from models.warp_generator import LOWER_MARGIN
    from streamer.portrait import EnrollConfig, enroll_images
    from tests.helpers import widen_eyes

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=512))  # eyes 34 px wide
    src = portrait.crop_landmarks
    target = widen_eyes(src, 0.25, lower=0.15)
    grid, _, _, white, _ = WarpRenderer(portrait)._run(target)
    boxes = fine_boxes(target, 512)[:2]
    eyes = ((468, L.RIGHT_LID_PAIRS, (33, 133)), (473, L.LEFT_LID_PAIRS, (362, 263)))
    for e, (centre, pairs, (a, b)) in enumerate(eyes):
        width = float(np.linalg.norm(src[b, :2] - src[a, :2]))
        assert np.linalg.norm(_source_at(grid, target[centre, :2]) - src[centre, :2]) < 0.03 * width
        x0, y0, x1, y1 = boxes[e]
        cover = cv2.resize(white[e], (int(x1 - x0), int(y1 - y0)), interpolation=cv2.INTER_LINEAR)
        lower = [down for _, down in pairs]
        order = np.argsort(src[lower, 0])
        for side in (-0.2, 0.2):  # beside the iris, between the portrait's and the target's
            x = src[centre, 0] + side * width  # lower lid (its margin taken off)
            lids = [np.interp(x, lm[lower, 0][order], lm[lower, 1][order]) for lm in (src, target)]
            y = int(0.5 * (lids[0] + lids[1] - LOWER_MARGIN * width))
            assert cover[y - y0, int(x) - x0] > 0.5  # the white


@pytest.mark.parametrize("name", ["mona_lisa.jpg", "einstein.jpg", "EAMM_jake4.png"])
def test_an_open_mouth_reads_open_to_the_tracker(data_dir, name):
    """The jaw of a closed-mouth portrait drops to 0.35 IOD and back twice; MediaPipe, tracking
    the renders as a video, follows the opening (Pearson r ≥ 0.8) and reads the widest drawn
    mouths open, at least 0.3 of the asked opening. The dark cavity without a tongue read
    them as closed lips on two of these three: r 0.51 and 0.37, 0.03 and 0.04 of it."""
    import cv2

    from benchmarks.protocol import mouth_opening, pearson_r
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.tracker import FaceTracker

    portrait = enroll_images([cv2.imread(str(data_dir / "portraits" / name))], EnrollConfig())
    renderer = WarpRenderer(portrait)
    amounts = 0.35 * np.sin(np.linspace(0.0, 2.0 * np.pi, 24)) ** 2
    asked, seen = [], []
    with FaceTracker(video=True) as tracker:
        for amount in amounts:
            target = open_mouth(portrait.crop_landmarks, float(amount))
            found = tracker.detect(renderer.render(target))
            assert found is not None
            asked.append(mouth_opening(target))
            seen.append(mouth_opening(found))
    asked_a, seen_a = np.array(asked), np.array(seen)
    assert pearson_r(asked_a, seen_a) >= 0.8
    widest = amounts > 0.3
    assert (seen_a[widest] / asked_a[widest]).min() >= 0.3


def test_manifest_is_checked(astronaut_portrait, tmp_path):
    from importlib import resources

    assets = resources.files("streamer") / "assets"
    for name in ("manifest.json", "warp_256.onnx"):
        shutil.copy(str(assets / name), tmp_path / name)
    WarpRenderer(astronaut_portrait, RendererConfig(model_dir=tmp_path))  # intact: loads
    blob = bytearray((tmp_path / "warp_256.onnx").read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / "warp_256.onnx").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="sha256"):
        WarpRenderer(astronaut_portrait, RendererConfig(model_dir=tmp_path))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["models"]["warp_256"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError):
        WarpRenderer(astronaut_portrait, RendererConfig(model_dir=tmp_path))


def test_renderers_are_registered_by_name(astronaut_portrait):
    class Fake:
        def __init__(self, portrait, config):
            self.portrait = portrait

        def render(self, target):
            return self.portrait.crop

        def close(self):
            pass

    register_renderer("fake-test", Fake)
    assert isinstance(create_renderer(astronaut_portrait, RendererConfig(name="fake-test")), Fake)
    with pytest.raises(ModelFileError, match="unknown renderer"):
        create_renderer(astronaut_portrait, RendererConfig(name="nope"))


def test_mouth_box_stays_inside_the_crop(astronaut_portrait):
    lm = astronaut_portrait.crop_landmarks.copy()
    x0, y0, x1, y1 = mouth_box(lm, 256)
    assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256
    lm[:, 1] += 1000  # mouth far outside
    assert tuple(mouth_box(lm, 256)) == (0, 0, 1, 1)
    assert L.iod(lm) > 0


@pytest.mark.parametrize("yaw", [-20, -10, 10, 20])
def test_head_turns_up_to_20_degrees_do_not_fold(astronaut_portrait, yaw):
    """A fold or tear is where the sampling map stops being one-to-one: its Jacobian
    determinant drops to zero or below. Turning the head ±20° keeps it positive everywhere."""
    from tests.helpers import rotate_yaw

    def det(grid: np.ndarray) -> np.ndarray:
        dx_dx = np.gradient(grid[..., 0], axis=1)
        dx_dy = np.gradient(grid[..., 0], axis=0)
        dy_dx = np.gradient(grid[..., 1], axis=1)
        dy_dy = np.gradient(grid[..., 1], axis=0)
        return dx_dx * dy_dy - dx_dy * dy_dx

    target = rotate_yaw(astronaut_portrait.crop_landmarks, yaw)
    spline = WarpRenderer(astronaut_portrait, RendererConfig(still_background=False))
    grid, _, _ = spline.sampling(target)
    assert det(grid).min() > 0.1  # no fold: every output pixel samples a distinct, unflipped place
    # With the background still, the map steps from the head's motion to the pixel itself at
    # the head's edge (the head in front of the background), a step, not a fold; the strip
    # the head uncovered shows the backdrop, not the texture. Off the step every pixel shown
    # from the portrait's texture is unfolded.
    texture = WarpRenderer(astronaut_portrait).render_textured(target).texture
    assert texture is not None
    shown = np.ones(texture.grid.shape[:2], np.float32)  # the texture's share of each pixel
    if not texture.empty_box:
        x0, y0, x1, y1 = texture.box
        shown[y0:y1, x0:x1] = texture.weight
    s = shown.shape[0]
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    still = (np.abs(texture.grid - np.dstack([xs, ys])).max(axis=2) < 0.01).astype(np.uint8)
    assert still.mean() > 0.2  # the background beside the turned head stayed where it was
    cross = np.ones((3, 3), np.uint8)
    step = cv2.dilate(cv2.morphologyEx(still, cv2.MORPH_GRADIENT, cross), cross) > 0
    inner = (cv2.erode((shown > 0.999).astype(np.uint8), cross) > 0) & ~step
    assert det(texture.grid)[inner].min() > 0.1


@pytest.fixture(scope="module")
def open_mouth_shots(data_dir):
    """A real clip's first frame (mouth closed) and its widest-open mouth, with landmarks."""
    from streamer.tracker import FaceTracker
    from streamer.video_io import read_video_frames

    frames = list(read_video_frames(data_dir / "driving" / "man_green_backdrop.mp4"))
    with FaceTracker(video=True) as tracker:
        lms = [tracker.detect(f) for f in frames]
    gaps = [L.iod(lm) and np.linalg.norm(lm[13, :2] - lm[14, :2]) / L.iod(lm) for lm in lms]
    wide = int(np.argmax(gaps))
    assert gaps[wide] > 0.1 and gaps[0] < 0.05
    return frames[0], frames[wide], lms[wide]


def test_the_warp_starts_from_the_nearest_shot(open_mouth_shots):
    """With a second shot of the same camera, a target like that shot is warped from it (the
    real open mouth, teeth and all) instead of being made up from the closed first frame."""
    from streamer.portrait import EnrollConfig, enroll_images

    first, wide, wide_lm = open_mouth_shots
    config = EnrollConfig(crop_size=256)
    one = enroll_images([first], config)
    two = enroll_images([first, wide], config, render_first=True)
    assert len(two.references) == 1
    target = two.box.to_crop(wide_lm)
    truth = two.references[0]
    single, double = WarpRenderer(one), WarpRenderer(two)
    from_one = single.render(one.box.to_crop(wide_lm))
    first = double.render(target)  # the switch begins: mostly still the first shot
    for _ in range(FADE_FRAMES - 1):
        from_two = double.render(target)
    assert double.shot == 1 and single.shot == 0
    assert _psnr(first, truth) < _psnr(from_two, truth) - 3  # faded in, not cut
    assert _psnr(from_two, truth) > 33  # the reference itself, barely moved
    assert _psnr(from_two, truth) > _psnr(from_one, truth) + 5  # 36 against 28 dB
    # Back at rest, the first shot renders again.
    double.render(two.crop_landmarks)
    assert double.shot == 0


def test_the_mouth_starts_from_the_shot_with_the_nearest_mouth(open_mouth_shots):
    """The face in place as in the closed first shot, the mouth open as in the second: the
    face is warped from the first, the mouth (its real teeth, not a drawn cavity) from the
    second, laid over the lips only."""
    from streamer.portrait import EnrollConfig, enroll_images
    from streamer.references import FEATURES

    first, wide, wide_lm = open_mouth_shots
    two = enroll_images([first, wide], EnrollConfig(crop_size=256), render_first=True)
    target = two.crop_landmarks.copy()
    mouth = np.array(L.MOUTH_REGION)
    wide_crop = two.reference_landmarks[0]
    target[mouth, :2] = (wide_crop[mouth, :2] - wide_crop[mouth, :2].mean(axis=0)
                         + target[mouth, :2].mean(axis=0))
    renders = {}
    for on in (False, True):
        renderer = WarpRenderer(two, RendererConfig(feature_shots=on))
        for _ in range(FADE_FRAMES):
            rendered, valid = renderer.render_with_validity(target)
        assert renderer.shot == 0  # the whole face stays with the first shot
        renders[on] = rendered.crop, valid, rendered.texture
    mouth_feature = next(f for f in FEATURES if f.name == "mouth")
    (x0, y0, x1, y1), alpha = mouth_feature.patch(target, 256)
    outside = np.ones((256, 256), bool)
    outside[y0:y1, x0:x1] = alpha < 1e-3
    assert np.array_equal(renders[False][0][outside], renders[True][0][outside])
    inner = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(inner, [np.round(target[L.LIPS_INNER, :2]).astype(np.int32)], 1)
    inner = inner > 0
    # Without: a drawn cavity (no texture there); with: the second shot's own open mouth.
    assert renders[False][1][inner].mean() < 0.2 and renders[True][1][inner].mean() > 0.9
    assert not np.array_equal(renders[False][0][inner], renders[True][0][inner])
    texture = renders[True][2]
    assert texture is not None and texture.weight.min() < 1e-3  # not the first shot's there


def _disc_head_moved(shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 128² shot whose person is a disc of radius 20 at the centre, the identity map, and
    a spline's map that moved everything `shift` px right → (person, pixels, grid)."""
    ys, xs = np.mgrid[0:128, 0:128].astype(np.float32)
    pixels = np.dstack([xs, ys])
    person = np.where((xs - 64) ** 2 + (ys - 64) ** 2 <= 400, 255, 0).astype(np.uint8)
    return person, pixels, pixels - np.float32([shift, 0])


def _striped_wall(person: np.ndarray) -> np.ndarray:
    """A 128² shot: a wall of vertical stripes (8 px, 60 / 180) with a horizontal band (rows
    90–99, 120) across it, and the person (a uniform 220) over it."""
    ys, xs = np.mgrid[0:128, 0:128]
    wall = np.where((xs // 8) % 2 == 0, 60, 180)
    wall = np.where((ys >= 90) & (ys < 100), 120, wall)
    shot = np.where(person > 0, 220, wall).astype(np.uint8)
    return np.dstack([shot] * 3)


def test_the_background_stays_still_where_the_head_does_not_cover_it():
    """The head (a disc) moved 8 px right: the whole map outside the head is the pixel itself
    (the wall stays, whatever the head did), the head is sampled where the map says, and over
    the strip it uncovered (and its fringe) the backdrop shows: the wall, not the head left
    behind. At rest nothing is laid over the shot."""
    from streamer.still_background import StillBackground

    person, pixels, grid = _disc_head_moved(8.0)
    still = StillBackground(person, _striped_wall(person))
    hold = still.hold(grid, pixels)
    held, strip = hold.grid, hold.strip
    close = lambda a, b: np.allclose(a, b, atol=0.01)  # noqa: E731
    assert close(held[64, 120], pixels[64, 120])  # background: still
    assert close(held[5, 5], pixels[5, 5])
    assert close(held[64, 70], grid[64, 70])  # the head: moved
    assert close(held[64, 46], pixels[64, 46])  # the strip [44, 52) it left: still too ...
    assert strip is not None
    (x0, y0, x1, y1), cover = strip
    covered = np.zeros((128, 128), np.float32)
    covered[y0:y1, x0:x1] = cover
    assert covered[64, 46] > 0.99 and covered[64, 48] > 0.99  # ... covered
    assert covered[64, 20] < 0.01 and covered[64, 110] < 0.01  # the wall away: not
    assert covered[64, 64] < 0.01  # nor the head where it is now
    assert person[64, 46] > 0 and still.backdrop[64, 46, 0] < 200  # the person's pixel ...
    # ... filled from the wall beside it
    assert close(StillBackground(person, _striped_wall(person)).hold(pixels.copy(), pixels).grid,
                 pixels)
    at_rest = StillBackground(person, _striped_wall(person)).hold(pixels.copy(), pixels)
    assert at_rest.strip is None and at_rest.cut is None  # no step: nothing taken from the crop


def test_the_held_crop_is_the_crop_resampled_through_the_held_map():
    """hold resamples the crop with the head's mask in one remap: where the head shows, the
    crop as the map has it; on the wall, the crop itself; both as one remap through the held
    map gives them, to the level."""
    from streamer.still_background import StillBackground

    person, pixels, grid = _disc_head_moved(8.0)
    rng = np.random.default_rng(0)
    crop = np.clip(_striped_wall(person).astype(np.int16)
                   + rng.integers(-30, 30, (128, 128, 3)), 0, 255).astype(np.uint8)
    grid = grid + rng.uniform(-0.3, 0.3, grid.shape).astype(np.float32)  # off whole pixels
    hold = StillBackground(person, crop).hold(grid, pixels)
    expected = cv2.remap(crop, hold.grid, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(hold.warped, expected)
    assert not np.array_equal(hold.warped, crop)  # the head moved in it


def test_the_cut_between_the_head_and_the_still_wall_is_marked_where_the_map_steps():
    """The head (a disc) moved 8 px right: the held map steps by 8 px where the moving head
    meets the still wall, and the cut covers the pixels either side of that step (a map
    sampled between two of them points between where they point). Moved half a pixel, the
    step is half a pixel: half covered."""
    from streamer.still_background import StillBackground

    person, pixels, grid = _disc_head_moved(8.0)
    hold = StillBackground(person, _striped_wall(person)).hold(grid, pixels)
    held, cut = hold.grid, hold.cut
    assert cut is not None
    (x0, y0, x1, y1), cover = cut
    covered = np.zeros((128, 128), np.float32)
    covered[y0:y1, x0:x1] = cover
    steps = np.abs(np.diff(held[:, :, 0], axis=1)) > 4.0  # from a pixel to the next in a row
    assert steps.sum() > 40
    assert covered[:, :-1][steps].min() > 0.99 and covered[:, 1:][steps].min() > 0.99
    at = np.zeros((128, 128), np.uint8)  # every step, along rows and down columns
    at[:, :-1] |= steps
    at[:-1] |= np.abs(np.diff(held[:, :, 0], axis=0)) > 4.0
    near = cv2.dilate(at, np.ones((5, 5), np.uint8)) > 0
    assert covered[~near].max() < 0.01  # nothing away from the step: the head, the wall
    small = StillBackground(person, _striped_wall(person)).hold(pixels - 0.5 * (
        pixels - grid) / 8.0, pixels).cut
    assert small is not None and 0.3 < small[1].max() < 0.7


def test_the_texture_gives_way_at_the_cut(astronaut_portrait):
    """Where the held map steps, the paste-back's full detail, sampling the map between two
    crop pixels, would draw whatever lies between where they point (the face's outline
    again, as a line beside the moved head): the texture says it is not the portrait's own
    there, so the crop's own pixels are pasted."""
    p = astronaut_portrait
    target = p.crop_landmarks + np.float32([10, 0, 0])
    rendered = WarpRenderer(p).render_textured(target)
    texture = rendered.texture
    assert texture is not None
    s = p.crop_size
    weight = np.ones((s, s), np.float32)
    x0, y0, x1, y1 = texture.box
    weight[y0:y1, x0:x1] = texture.weight
    grid = texture.grid
    steps = np.hypot(*np.moveaxis(np.diff(grid, axis=1), 2, 0)) > 3.0  # along each row
    assert steps.sum() > 50  # the head's outline, both sides
    assert weight[:, :-1][steps].max() < 0.05 and weight[:, 1:][steps].max() < 0.05


def test_the_wall_a_moving_head_uncovers_stays_where_it_was():
    """A striped wall behind a head that moves 8 px: every stripe and the band across the
    wall stay where they were, to the pixel, however the head moved (before the backdrop, the
    wall beside the head moved with it and bent back to still over twice the shift, a wave
    through every stripe); the strip it uncovered shows the backdrop, which meets the wall
    without a step."""
    from streamer.renderer import lay_backdrop
    from streamer.still_background import StillBackground

    person, pixels, grid = _disc_head_moved(8.0)
    shot = _striped_wall(person)
    still = StillBackground(person, shot)
    hold = still.hold(grid, pixels)
    held, strip = hold.grid, hold.strip
    out = cv2.remap(shot, held, None, cv2.INTER_LINEAR)
    assert strip is not None
    lay_backdrop(out, strip, still.backdrop)
    head = cv2.dilate(person, np.ones((13, 13), np.uint8)) > 0  # the head and its fringe
    moved_head = np.roll(head, 8, axis=1)
    wall = ~head & ~moved_head
    assert np.array_equal(out[wall], shot[wall])  # the wall: as it was, every pixel
    # the strip: filled from the wall around it (its stripes' 60–180), not the head (220)
    # left behind
    uncovered = head & ~moved_head
    assert out[uncovered].min() >= 60 and out[uncovered].max() <= 180


def _grainy_wall(grain: float, colour: bool, stripes: bool = False, seed: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A 512 shot: a wall with grain of `grain` levels (one grain in all three channels, or
    one per channel where `colour`), striped 70 / 170 every 32 px where `stripes`; a person
    (a bright disc, 300 px across) in front. → (shot, its hole: the person, 0/1)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((512, 512, 3 if colour else 1)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.7).reshape(512, 512, -1)
    noise *= grain / noise.std()
    wall = np.full((512, 512, 3), 120.0, np.float32)
    if stripes:
        wall[:, :, :] = np.where((np.arange(512) // 32) % 2 == 0, 70.0, 170.0)[None, :, None]
    hole = np.zeros((512, 512), np.uint8)
    cv2.circle(hole, (256, 300), 150, 1, -1)
    shot = np.clip(wall + noise, 0, 255).round().astype(np.uint8)
    shot[hole > 0] = 230
    return shot, hole


def _fine_detail(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(N, 3): the image less its Gaussian blur (σ 2) at `where`."""
    f = image.astype(np.float32)
    return (f - cv2.GaussianBlur(f, (0, 0), 2.0))[where]


def test_the_backdrop_keeps_the_walls_grain(monkeypatch: pytest.MonkeyPatch):
    """Where a head moved off a grainy wall, the backdrop shows the wall's grain, not a smooth
    patch: its fine detail as strong as the wall's (within a fifth; Telea's fill alone had a
    tenth of it), as alike between neighbours, one grain in all three channels where the
    wall's is, one per channel where the wall's is; and the same for the same shot."""
    from streamer import still_background
    from streamer.still_background import _alike, backdrop

    for colour in (False, True):
        shot, hole = _grainy_wall(6.0, colour)
        filled = backdrop(shot, hole)
        inside = cv2.erode(hole, np.ones((21, 21), np.uint8)) > 0
        wall = cv2.dilate(hole, np.ones((61, 61), np.uint8)) == 0
        ours, theirs = _fine_detail(filled, inside), _fine_detail(shot, wall)
        assert np.allclose(ours.std(axis=0), theirs.std(axis=0), rtol=0.2)
        grey = lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)  # noqa: E731
        fine = grey(filled) - cv2.GaussianBlur(grey(filled), (0, 0), 2.0)
        wall_fine = grey(shot) - cv2.GaussianBlur(grey(shot), (0, 0), 2.0)
        assert abs(_alike(fine[inside], inside) - _alike(wall_fine[wall], wall)) < 0.1
        across = np.corrcoef(ours.T)[0, 1:]  # blue with green and red
        assert (across > 0.9).all() if not colour else (np.abs(across) < 0.2).all()
        assert np.array_equal(filled, backdrop(shot, hole))
    monkeypatch.setattr(still_background, "grain", lambda crop, hole: None)
    smooth = backdrop(shot, hole)  # Telea's fill alone: a tenth of the wall's
    assert (_fine_detail(smooth, inside).std(axis=0) < 0.2 * theirs.std(axis=0)).all()


def test_a_walls_seams_and_a_flat_wall_give_no_grain():
    """The grain is the wall's fine detail less its seams: a striped wall with grain of 2
    levels fills with grain of about 2 (not the stripes' edges, 100 levels high), a flat wall
    with none, nor a hole of a pixel (its noise has no spread to scale: it was NaN)."""
    from streamer.still_background import backdrop, grain

    shot, hole = _grainy_wall(2.0, False, stripes=True)
    inside = cv2.erode(hole, np.ones((21, 21), np.uint8)) > 0
    edges = np.abs(np.diff(np.arange(512) // 32)) > 0
    plain = np.ones(512, bool)
    plain[np.flatnonzero(edges)[:, None] + np.arange(-4, 6)] = False  # columns off the edges
    wall = (cv2.dilate(hole, np.ones((61, 61), np.uint8)) == 0) & plain[None, :]
    ours = _fine_detail(backdrop(shot, hole), inside).std(axis=0)
    assert np.allclose(ours, _fine_detail(shot, wall).std(axis=0), rtol=0.35)
    flat, hole = _grainy_wall(0.0, False)
    assert grain(flat, hole) is None
    pixel = np.zeros((512, 512), np.uint8)
    pixel[200, 300] = 1
    assert grain(shot, pixel) is None
    assert np.array_equal(backdrop(shot, pixel)[pixel == 0], shot[pixel == 0])


def test_the_heads_outline_over_the_still_background_is_smooth():
    """A uniform head (a disc, 200) moved a fractional 6.3 px right and 2.6 px down over a
    uniform wall (50): where it moved over the wall, each outline pixel shows the head as
    much as the moved head covers it (its 8 × 8 sub-pixels' share; off by 5.7 levels on
    average, 9.5 at most), where a map cut at the person mask itself drew a staircase of
    whole pixels (off by 17 on average, up to 70)."""
    from streamer.still_background import StillBackground

    person, pixels, _ = _disc_head_moved(0.0)
    shift = np.float32([6.3, 2.6])
    crop = np.where(person > 0, 200, 50).astype(np.uint8)
    held = StillBackground(person, np.dstack([crop] * 3)).hold(pixels - shift, pixels).grid
    out = cv2.remap(crop, held, None, cv2.INTER_LINEAR).astype(float)
    sub = (np.arange(8) + 0.5) / 8.0  # the moved head's share of each pixel
    xs, ys = pixels[:, :, 0], pixels[:, :, 1]
    share = np.zeros((128, 128))
    for dy in sub:
        for dx in sub:
            sx = np.clip(np.floor(xs + dx - shift[0]), 0, 127).astype(int)
            sy = np.clip(np.floor(ys + dy - shift[1]), 0, 127).astype(int)
            share += person[sy, sx] > 0
    share /= 64.0
    wall = cv2.dilate(person, np.ones((3, 3), np.uint8)) == 0  # where the wall stays
    outline = (share > 0.05) & (share < 0.95) & wall
    assert outline.sum() > 50
    err = np.abs(out - (50.0 + 150.0 * share))[outline]
    assert err.mean() < 8.0 and err.max() < 12.0


def test_the_background_stays_still_when_the_head_moves(astronaut_portrait):
    """A head moved 12 px right (a sideways sway): the background beside it stays as it was,
    where the spline alone drags it along; the face moves in both."""
    p = astronaut_portrait
    target = p.crop_landmarks + np.float32([12, 0, 0])
    still = WarpRenderer(p).render(target)
    dragged = WarpRenderer(p, RendererConfig(still_background=False)).render(target)
    person = p.person_masks[0]
    # background in the portrait, well away from the person (the astronaut's backdrop is a
    # smooth blur, so the dragged one differs by a level or two)
    region = cv2.erode((person < 10).astype(np.uint8), np.ones((51, 51), np.uint8)) > 0
    assert region.sum() > 10000
    diff = lambda a: np.abs(a[region].astype(int) - p.crop[region]).mean()  # noqa: E731
    assert diff(still) < 0.05
    assert diff(dragged) > 0.5
    x0, y0, x1, y1 = L.face_box(p.crop_landmarks)
    face = slice(int(y0) + 10, int(y1) - 10), slice(int(x0) + 22, int(x1) - 2)
    assert _psnr(still[face], dragged[face]) > 40  # the face itself: the same warp


def test_the_backdrop_fills_the_person_from_the_wall_around_it():
    """backdrop(): the person's place (and only it) is filled from the wall around it; a
    shot with nothing to fill, or nothing to fill it from, comes back as it was."""
    from streamer.still_background import backdrop

    person, _, _ = _disc_head_moved(0.0)
    shot = _striped_wall(person)
    hole = (person > 0).astype(np.uint8)
    filled = backdrop(shot, hole)
    assert np.array_equal(filled[hole == 0], shot[hole == 0])
    inside = filled[hole > 0]
    assert inside.min() >= 60 and inside.max() <= 180  # the wall's greys, not the head's 220
    assert inside.std() > 5  # not one flat grey: it takes the stripes' light and dark beside it
    assert np.array_equal(backdrop(shot, np.zeros_like(hole)), shot)
    assert np.array_equal(backdrop(shot, np.ones_like(hole)), shot)


def test_the_full_detail_paste_back_does_not_bring_the_head_back(astronaut_portrait):
    """Where the head uncovered the wall, the crop shows the backdrop, and the texture says
    it is not the portrait's own there: a paste-back at full resolution (which resamples the
    texture from the portrait through the map, the pixel itself there) drew the head left
    behind, a second head beside the moved one."""
    p = astronaut_portrait
    target = p.crop_landmarks + np.float32([16, 0, 0])
    rendered = WarpRenderer(p).render_textured(target)
    texture = rendered.texture
    assert texture is not None and not texture.empty_box
    s = p.crop_size
    shown = np.ones((s, s), np.float32)
    x0, y0, x1, y1 = texture.box
    shown[y0:y1, x0:x1] = texture.weight
    person = p.person_masks[0] >= 128
    moved = np.roll(person, 16, axis=1)
    left = cv2.erode((person & ~moved).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    top, nose = p.crop_landmarks[[10, 1], 1]  # forehead to nose: rows the target moves
    left[: int(top)] = False  # whole (the collar and the body below stay nearer where they
    left[int(nose):] = False  # were)
    assert left.sum() > 100  # the strip the head left, well inside it
    assert shown[left].max() < 0.05  # not the texture (the head left behind) ...
    assert np.abs(rendered.crop[left].astype(int) - p.crop[left]).mean() > 10  # ... the backdrop


def test_stages_without_the_texture_render_the_same_crop(astronaut_portrait):
    """A caller that pastes from the crop gets the crop alone, the same pixels."""
    from streamer.renderer import render_stages

    target = astronaut_portrait.crop_landmarks + np.float32([16, 0, 0])  # a backdrop shows
    crops = []
    for textured in (True, False):
        begin, finish = render_stages(WarpRenderer(astronaut_portrait), textured=textured)
        rendered = finish(begin(target))
        assert (rendered.texture is not None) == textured
        crops.append(rendered.crop)
    assert np.array_equal(crops[0], crops[1])


def test_the_spline_survives_landmarks_that_coincide(astronaut_portrait):
    """Landmarks rounded to a grid (a stored track, a coarse tracker) can put two of the
    spline's centres on one spot; its system is then singular (numpy 2's LAPACK raised
    LinAlgError on such frames in training), and the warp takes the least-squares solution."""
    from streamer import warp_inputs as W

    size = astronaut_portrait.crop.shape[0]
    source = W.normalize(W.fit_points(astronaut_portrait.crop_landmarks, size), size)
    target = open_mouth(astronaut_portrait.crop_landmarks, 0.3)
    fit = W.normalize(W.target_fit_points(astronaut_portrait.crop_landmarks, target, size), size)
    assert not W._coincide(fit[W.CTRL_INDEX])
    fit[W.CTRL_INDEX[1]] = fit[W.CTRL_INDEX[0]]  # two centres on one spot
    assert W._coincide(fit[W.CTRL_INDEX])
    coef = W.solve_tps(fit, source)
    n = W.NUM_CTRL
    mapped = W._tps_kernel(fit.astype(float), fit[W.CTRL_INDEX].astype(float)) @ coef[:n]
    mapped += np.concatenate([np.ones((len(fit), 1)), fit], 1) @ coef[n:]
    assert np.all(np.isfinite(coef)) and np.abs(coef).max() < 100
    assert np.median(np.linalg.norm(mapped - source, axis=1)) * size / 2 < 1.0  # pixels
    singular = np.zeros((4, 4))
    singular[:2, :2] = np.eye(2)
    assert np.allclose(W._solve(singular, np.ones((4, 1)), singular=False)[:2], 1.0)
