import json

import cv2
import numpy as np
import pytest

from streamer import landmarks as L
from streamer.errors import (
    FaceChoiceError,
    FaceTooSmallError,
    ImageReadError,
    NoFaceError,
    PortraitFileError,
)
from streamer.portrait import (
    EnrollConfig,
    cut_crop,
    enroll_images,
    load_portrait,
    save_portrait,
)
from streamer.tracker import FaceTracker
from streamer.video_io import read_image


def test_enroll_computes_the_crop_and_its_tensors(astronaut_portrait, astronaut_bgr):
    p = astronaut_portrait
    assert p.crop.shape == (256, 256, 3) and p.mouth_mask.shape == (256, 256)
    assert p.image is astronaut_bgr or np.array_equal(p.image, astronaut_bgr)
    # The crop's landmarks are the image's, moved into the crop.
    x0, y0, x1, y1 = L.face_box(p.crop_landmarks)
    assert 0 < x0 < x1 < 256 and 0 < y0 < y1 < 256
    assert 0.3 < (x1 - x0) / 256 < 0.5  # room for hair around the face
    assert p.colors.shape == (4, 3) and (p.colors[1] < p.colors[0]).all()  # deep is darker


def test_crop_pixels_match_the_landmarks(astronaut_portrait):
    """The crop shows what the image shows at the same landmark (checks the coordinate
    convention: pixel centres at i + 0.5)."""
    p = astronaut_portrait
    for idx in (1, 33, 263, 13):
        x, y = p.landmarks[idx, :2]
        cx, cy = p.crop_landmarks[idx, :2]
        a = p.image[int(y), int(x)].astype(int)
        b = p.crop[int(cy), int(cx)].astype(int)
        assert np.abs(a - b).max() < 40


def test_save_and_load_round_trip(astronaut_portrait, tmp_path):
    path = tmp_path / "a.headcast"
    save_portrait(astronaut_portrait, path)
    loaded = load_portrait(path)
    for name in ("image", "landmarks", "crop", "crop_landmarks", "mouth_mask", "colors", "shots",
                 "references", "reference_landmarks", "person_masks"):
        assert np.array_equal(getattr(loaded, name), getattr(astronaut_portrait, name)), name
    assert loaded.box == astronaut_portrait.box
    assert loaded.sources == astronaut_portrait.sources and len(loaded.sources[0]) == 64


def test_bad_portrait_files_raise_a_named_error(astronaut_portrait, tmp_path):
    good = tmp_path / "good.headcast"
    save_portrait(astronaut_portrait, good)
    truncated = tmp_path / "truncated.headcast"
    truncated.write_bytes(good.read_bytes()[:5000])
    garbage = tmp_path / "garbage.headcast"
    garbage.write_bytes(b"not a portrait at all")
    pickled = tmp_path / "pickled.headcast"
    np.savez(pickled.open("wb"), header=np.array([{"evil": 1}], dtype=object))
    empty = tmp_path / "empty.headcast"
    empty.write_bytes(b"")  # numpy raises EOFError for it, which once went up as a traceback
    for path in (truncated, garbage, pickled, empty):
        with pytest.raises(PortraitFileError, match="corrupt or not a headcast portrait file"):
            load_portrait(path)
    with pytest.raises(PortraitFileError, match="missing.headcast: no such file"):
        load_portrait(tmp_path / "missing.headcast")
    folder = tmp_path / "folder.headcast"
    folder.mkdir()
    with pytest.raises(PortraitFileError, match="folder.headcast: a folder, not a file"):
        load_portrait(folder)


def test_other_version_is_refused(astronaut_portrait, tmp_path, monkeypatch):
    import streamer.portrait as P

    path = tmp_path / "v.headcast"
    monkeypatch.setattr(P, "VERSION", 99)
    save_portrait(astronaut_portrait, path)
    monkeypatch.setattr(P, "VERSION", 1)
    with pytest.raises(PortraitFileError, match="version 99"):
        load_portrait(path)


@pytest.mark.parametrize("version", [2, 4])
def test_older_files_get_the_current_mouth_colours(astronaut_portrait, tmp_path, monkeypatch,
                                                    version):
    """A version 2 file holds the earlier, lip-bright cavity, a version 4 file no tongue colour;
    loading either recomputes the colours from its crop, so old portraits get the current
    mouth (and the renderer its four colours)."""
    from dataclasses import replace

    import streamer.portrait as P

    stale = replace(astronaut_portrait, colors=np.full((3, 3), 0.5, np.float32))
    path = tmp_path / f"v{version}.headcast"
    monkeypatch.setattr(P, "VERSION", version)
    save_portrait(stale, path)
    monkeypatch.undo()
    assert astronaut_portrait.colors.shape == (4, 3)
    assert np.allclose(load_portrait(path).colors, astronaut_portrait.colors)
    current = tmp_path / "current.headcast"
    save_portrait(replace(stale, colors=np.full((4, 3), 0.5, np.float32)), current)
    assert np.allclose(load_portrait(current).colors, 0.5)  # a current file is read as is


def test_no_face_portraits(data_dir):
    for name in ("no_face_dog.jpg", "no_face_cartoon_alpaca.jpg"):
        with pytest.raises(NoFaceError, match="no human face"):
            enroll_images([read_image(data_dir / "portraits" / name)])


def test_corrupt_and_missing_images(tmp_path, data_dir):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes((data_dir / "portraits" / "einstein.jpg").read_bytes()[:300])
    for path in (bad, tmp_path / "none.jpg"):
        with pytest.raises(ImageReadError):
            read_image(path)
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ImageReadError, match="folder.jpg: a folder, not a file"):
        read_image(tmp_path / "folder.jpg")


def test_a_picture_too_large_to_decode_is_refused_from_its_header(tmp_path, monkeypatch):
    """A PNG of 3 MB that says 25000 x 12000 (300 megapixels, 900 MB once decoded; a 2.7 MB
    one saying 30000 x 30000 took 74 s and 8 GB) is refused with its size, undecoded."""
    from streamer import video_io
    from tests.helpers import flat_png

    path = tmp_path / "panorama.png"
    path.write_bytes(flat_png(25_000, 12_000))
    monkeypatch.setattr(video_io, "decode_image", lambda data: pytest.fail("it was decoded"))
    with pytest.raises(ImageReadError, match=r"panorama.png is 25000x12000, 300 megapixels: "
                       r"take a picture of at most 250"):
        read_image(path)


def test_a_portrait_file_that_would_unpack_to_gigabytes_is_refused(tmp_path, monkeypatch):
    """Arrays a crafted file says are larger than it holds: one compressed (256 MB of zeros
    in 0.3 MB; refused before numpy reads a byte), one whose header claims 3 TB (numpy's
    MemoryError had ended `animate` with a traceback)."""
    import io
    import zipfile

    from numpy.lib import format as npy

    def member(shape: tuple[int, ...], body: bytes) -> bytes:
        out = io.BytesIO()
        npy.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
        return out.getvalue() + body

    header = json.dumps({"format": "headcast-portrait", "version": 6}).encode()
    unpacked = tmp_path / "unpacked.headcast"
    with zipfile.ZipFile(unpacked, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("header.npy", member((len(header),), header))
        with archive.open("crop.npy", "w", force_zip64=True) as f:
            f.write(member((256 << 20,), b""))
            for _ in range(4):
                f.write(bytes(64 << 20))
    claims = tmp_path / "claims.headcast"
    with zipfile.ZipFile(claims, "w") as archive:
        archive.writestr("header.npy", member((len(header),), header))
        archive.writestr("crop.npy", member((10**6, 10**6, 3), bytes(1000)))

    with monkeypatch.context() as patch:
        patch.setattr(np, "load", lambda *a, **k: pytest.fail("numpy read it"))
        with pytest.raises(PortraitFileError, match=r"unpacked.headcast: corrupt or not a headcast"
                           r" portrait file \(crop.npy unpacks to 268 MB in a file of 0.3 MB\)"):
            load_portrait(unpacked)
    with pytest.raises(PortraitFileError, match=r"claims.headcast: corrupt or not a headcast"):
        load_portrait(claims)


def test_large_portrait(data_dir):
    image = read_image(data_dir / "portraits" / "photo_bw_young_man.jpg")
    assert image.shape[:2] == (2048, 2048)
    p = enroll_images([image], EnrollConfig(crop_size=256))
    assert p.crop.shape == (256, 256, 3) and p.box.side > 256


def test_tiny_face(astronaut_bgr):
    """A face 40 px wide still enrolls (upsampled); 12 px is refused with a named error."""
    face = astronaut_bgr[20:300, 110:390]
    small = np.full((200, 200, 3), 127, np.uint8)
    small[60:130, 60:130] = cv2.resize(face, (70, 70), interpolation=cv2.INTER_AREA)
    p = enroll_images([small], EnrollConfig(crop_size=256))
    assert p.box.scale > 1.5
    tiny = np.full((200, 200, 3), 127, np.uint8)
    tiny[90:110, 90:110] = cv2.resize(face, (20, 20), interpolation=cv2.INTER_AREA)
    with pytest.raises((NoFaceError, FaceTooSmallError)):
        enroll_images([tiny])


def test_k_shot_keeps_every_shot_and_renders_the_most_frontal(astronaut_bgr):
    turned = cv2.warpAffine(astronaut_bgr, np.float32([[0.8, 0, 40], [0, 1, 0]]), (512, 512))
    p = enroll_images([turned, astronaut_bgr], EnrollConfig(crop_size=256))
    assert p.shots.shape == (2, 478, 3)
    assert np.array_equal(p.image, astronaut_bgr)  # the unsqueezed one is more frontal


def test_shots_of_one_camera_become_references(astronaut_bgr, tmp_path):
    """Same-size shots are cut in the rendered shot's box, so the warp can start from any of
    them; a shot of another size (another camera) is kept as a shot only."""
    moved = cv2.warpAffine(astronaut_bgr, np.float32([[1, 0, 12], [0, 1, 6]]), (512, 512),
                           borderMode=cv2.BORDER_REPLICATE)
    bigger = cv2.resize(astronaut_bgr, (600, 600))
    p = enroll_images([astronaut_bgr, moved, bigger], EnrollConfig(crop_size=256),
                      render_first=True)
    assert p.shots.shape == (3, 478, 3)
    assert p.references.shape == (1, 256, 256, 3)
    assert np.array_equal(p.references[0], cut_crop(moved, p.box))
    assert np.allclose(p.reference_landmarks[0], p.box.to_crop(p.shots[1]))
    shift = (p.reference_landmarks[0] - p.crop_landmarks)[:, :2].mean(axis=0)
    assert np.allclose(shift, np.array([12, 6]) * p.box.scale, atol=1.5)
    # Each shot the warp starts from has its own person mask: the reference's person sits
    # where the moved picture put her.
    assert p.person_masks.shape == (2, 256, 256)
    across = [np.nonzero(m >= 128)[1].mean() for m in p.person_masks]
    assert abs((across[1] - across[0]) - 12 * p.box.scale) < 2
    path = tmp_path / "k.headcast"
    save_portrait(p, path)
    loaded = load_portrait(path)
    assert np.array_equal(loaded.references, p.references)
    assert np.array_equal(loaded.reference_landmarks, p.reference_landmarks)
    single = enroll_images([astronaut_bgr], EnrollConfig(crop_size=256))
    assert single.references.shape == (0, 256, 256, 3)


def test_person_masks_that_do_not_fit_the_shots_are_a_named_error(astronaut_portrait, tmp_path):
    from dataclasses import replace

    path = tmp_path / "m.headcast"
    two = np.concatenate([astronaut_portrait.person_masks] * 2)  # two masks for one shot
    save_portrait(replace(astronaut_portrait, person_masks=two), path)
    with pytest.raises(PortraitFileError, match="person masks"):
        load_portrait(path)


def test_files_before_references_load_without_them(astronaut_portrait, tmp_path):
    path = tmp_path / "v3.headcast"
    arrays = {n: getattr(astronaut_portrait, n) for n in
              ("image", "landmarks", "crop", "crop_landmarks", "mouth_mask", "colors", "shots",
               "embedding", "psi", "generator")}
    header = {"format": "headcast-portrait", "version": 3, "sources": [],
              "box": [astronaut_portrait.box.x0, astronaut_portrait.box.y0,
                      astronaut_portrait.box.side, astronaut_portrait.box.size]}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    loaded = load_portrait(path)
    assert len(loaded.references) == 0 and len(loaded.reference_landmarks) == 0
    assert len(loaded.person_masks) == 0  # the renderer then moves the background as before


def test_teeth_take_the_colour_of_the_portraits_light(astronaut_portrait):
    """A varnished painting's white is yellow: its synthetic teeth must be too, not the
    neutral grey that looks blue next to it."""
    from streamer.portrait import light_colour, mouth_colors

    p = astronaut_portrait
    varnish = np.array([0.6, 0.85, 1.0])  # BGR, the Mona Lisa's measured cast
    tinted = np.clip(p.crop * varnish, 0, 255).astype(np.uint8)
    plain_light, tinted_light = (light_colour(c, p.crop_landmarks) for c in (p.crop, tinted))
    assert plain_light.max() == 1.0 and tinted_light.max() == 1.0
    b_over_r = lambda c: c[0] / c[2]  # noqa: E731
    assert b_over_r(tinted_light) < 0.85 * b_over_r(plain_light)
    teeth_plain = mouth_colors(p.crop, p.crop_landmarks)[2]
    teeth_tinted = mouth_colors(tinted, p.crop_landmarks)[2]
    assert b_over_r(teeth_tinted) < 0.85 * b_over_r(teeth_plain)
    grey = cv2.cvtColor(cv2.cvtColor(p.crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert np.allclose(light_colour(grey, p.crop_landmarks), 1.0)  # black and white: grey


def _painted_mouth(p, gap: float, inside_bgr: tuple[int, int, int], grey: bool = False,
                   lips_bgr: tuple[int, int, int] = (70, 60, 170)):
    """The astronaut's crop with her lips shut, then parted by gap IOD (the jaw dropped) and
    painted: lips_bgr lips around an opening of inside_bgr (teeth, a shadow, the dark inside)."""
    from tests.helpers import open_mouth, shut_lips

    lm = open_mouth(shut_lips(p.crop_landmarks.astype(np.float64)), gap)
    crop = p.crop.copy()
    cv2.fillPoly(crop, [lm[L.LIPS_OUTER, :2].astype(np.int32)], lips_bgr)
    cv2.fillPoly(crop, [lm[L.LIPS_INNER, :2].astype(np.int32)], inside_bgr)
    if grey:
        crop = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return crop, lm


def test_an_own_open_mouth_tells_teeth_from_a_shadow(astronaut_portrait):
    """Teeth are lighter than the lips, or nearly as light and less coloured (grey teeth
    under red lips), in colour or in grey; lips parted a little over something darker are a
    shadow; parted wide, what shows is the mouth's inside, teeth or not; a closed mouth has
    no opening at all."""
    from streamer.portrait import TEETH_SHARE, own_mouth_is_shadow, own_teeth_share
    from tests.helpers import shut_lips

    p = astronaut_portrait
    assert own_teeth_share(p.crop, p.crop_landmarks) >= TEETH_SHARE  # she smiles, teeth showing
    assert not own_mouth_is_shadow(p.crop, p.crop_landmarks)
    closed = shut_lips(p.crop_landmarks)
    assert own_teeth_share(p.crop, closed) == 0.0 and not own_mouth_is_shadow(p.crop, closed)
    teeth, shadow, lip_dark = (225, 232, 238), (40, 35, 80), (60, 70, 110)
    for gap, inside, grey, has_teeth, is_shadow in [
        (0.06, teeth, False, True, False), (0.06, shadow, False, False, True),
        (0.06, lip_dark, False, False, True), (0.06, teeth, True, True, False),
        (0.06, shadow, True, False, True), (0.15, shadow, False, False, False),
    ]:
        crop, lm = _painted_mouth(p, gap, inside, grey)
        share = own_teeth_share(crop, lm)
        assert (share >= TEETH_SHARE) == has_teeth, (gap, inside, grey, share)
        assert share > 0.5 if has_teeth else share == 0.0
        assert own_mouth_is_shadow(crop, lm) == is_shadow, (gap, inside, grey)
    pale, warm_teeth, grey_teeth = (150, 150, 200), (195, 200, 240), (95, 100, 105)
    crop, lm = _painted_mouth(p, 0.06, warm_teeth, lips_bgr=pale)  # as coloured, lighter
    assert own_teeth_share(crop, lm) > 0.5 and not own_mouth_is_shadow(crop, lm)
    crop, lm = _painted_mouth(p, 0.06, grey_teeth)  # no lighter than the red lips, but grey
    assert own_teeth_share(crop, lm) > 0.5 and not own_mouth_is_shadow(crop, lm)


def test_several_faces_of_about_one_size_ask_which(two_faces):
    """A picture of two people: taking the larger face would be a guess; the error says how
    to choose, and --face N (left to right) chooses."""
    image = two_faces(240, 220)
    with pytest.raises(FaceChoiceError, match=r"2 faces of about one size.*--face N"):
        enroll_images([image])
    left = enroll_images([image], EnrollConfig(crop_size=256, face=1))
    right = enroll_images([image], EnrollConfig(crop_size=256, face=2))
    assert left.landmarks[:468, 0].mean() < 320 < right.landmarks[:468, 0].mean()
    with pytest.raises(FaceChoiceError, match="--face 3 is not one of them"):
        enroll_images([image], EnrollConfig(crop_size=256, face=3))


def test_a_much_smaller_face_leaves_the_largest_the_portrait(two_faces):
    image = two_faces(300, 200)
    with FaceTracker(video=False) as tracker:
        assert len(tracker.detect_all(image)) == 2
    portrait = enroll_images([image], EnrollConfig(crop_size=256))
    assert portrait.landmarks[:468, 0].mean() < 320


def test_a_face_found_in_the_background_clutter_asks_nothing(data_dir):
    """few_shot_woman_indoor, frame 224: MediaPipe also finds a "face" in the blurred room
    behind her, 0.86 of her size. It is on no person (streamer.segment.PersonCheck), so her
    face is the portrait, with no question asked."""
    from streamer.video_io import read_video_frames

    frame = list(read_video_frames(data_dir / "driving" / "few_shot_woman_indoor.mp4", 225))[224]
    with FaceTracker(video=False) as tracker:
        assert len(tracker.detect_all(frame)) == 2
    portrait = enroll_images([frame], EnrollConfig(crop_size=256))
    assert 620 < portrait.landmarks[:468, 0].mean() < 820  # hers, mid-frame
