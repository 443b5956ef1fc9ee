"""streamer/neural.py and the portrait file's embedding fields, with a tiny model exported to
a temporary folder (the shipped model is checked in test_shipped_neural_model)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.errors import ModelFileError
from streamer.landmark_image import landmark_image
from streamer.portrait import load_portrait, save_portrait
from streamer.renderer import RendererConfig, create_renderer


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """warp + a tiny untrained neural model, exported like `python -m export --checkpoint`."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from dataclasses import asdict

    from export.__main__ import main as export_main
    from models.configs import MODEL_SIZES
    from models.networks import Discriminator, Embedder, Generator

    out = tmp_path_factory.mktemp("models")
    dims = MODEL_SIZES["tiny"]
    torch.manual_seed(0)
    state = {"dims": asdict(dims), "E": Embedder(dims).state_dict(),
             "G": Generator(dims).state_dict(), "D": Discriminator(dims, 2).state_dict()}
    torch.save(state, out / "ckpt.pt")
    assert export_main(["--out", str(out), "--checkpoint", str(out / "ckpt.pt")]) == 0
    return out


def config(model_dir: Path, name: str = "neural") -> RendererConfig:
    return RendererConfig(name=name, model_dir=model_dir)


def test_landmark_image_draws_each_region_in_its_colour(astronaut_portrait):
    lm = astronaut_portrait.crop_landmarks
    image = landmark_image(lm, 256)
    assert image.shape == (256, 256, 3) and image.any()
    x, y = (lm[0, :2]).astype(int)  # upper-lip centre: drawn in the lips' red
    patch = image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
    assert patch[:, 2].max() > 150 and patch[:, 0].max() < 100
    assert np.array_equal(image, landmark_image(lm, 256))  # deterministic


def test_embedding_is_cached_in_the_portrait_file(tiny_models, astronaut_portrait,
                                                  astronaut_bgr, tmp_path):
    from streamer.neural import with_embedding

    portrait = with_embedding(astronaut_portrait, [astronaut_bgr], config(tiny_models))
    assert portrait.embedding.shape == (32,) and portrait.psi.size > 0
    save_portrait(portrait, tmp_path / "a.headcast")
    loaded = load_portrait(tmp_path / "a.headcast")
    assert np.array_equal(loaded.psi, portrait.psi)
    assert np.array_equal(loaded.embedding, portrait.embedding)


def test_more_shots_give_another_embedding(tiny_models, astronaut_bgr):
    from streamer.neural import with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    flipped = np.ascontiguousarray(astronaut_bgr[:, ::-1])
    one = enroll_images([astronaut_bgr], EnrollConfig(crop_size=256))
    two = enroll_images([astronaut_bgr, flipped], EnrollConfig(crop_size=256))
    e1 = with_embedding(one, [astronaut_bgr], config(tiny_models)).embedding
    e2 = with_embedding(two, [flipped, astronaut_bgr], config(tiny_models)).embedding
    assert e1.shape == e2.shape and not np.allclose(e1, e2)


@pytest.mark.parametrize("size", [256, 512])
def test_neural_renderer_renders_the_crop(tiny_models, astronaut_bgr, size):
    from streamer.neural import with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=size))
    portrait = with_embedding(portrait, [astronaut_bgr], config(tiny_models))
    renderer = create_renderer(portrait, config(tiny_models))
    warp = create_renderer(portrait, config(tiny_models, "warp"))
    target = portrait.crop_landmarks.copy()
    target[14, 1] += 0.05 * size  # open the mouth
    out, plain = renderer.render(target), warp.render(target)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    # Untrained, the blend mask trusts the warp: mostly the warp's pixels, not identical.
    diff = np.abs(out.astype(int) - plain.astype(int))
    assert 0 < diff.mean() < 12
    renderer.close()
    renderer.close()  # safe twice


def test_generator_region_is_the_mouth_and_where_the_warp_has_no_texture(astronaut_portrait):
    from streamer import landmarks as L
    from streamer.neural import generator_region

    lm = astronaut_portrait.crop_landmarks
    valid = np.ones((256, 256), np.float32)
    valid[:20, :20] = 0.0  # the warp reached past the crop here
    region = generator_region(lm, valid)
    assert region.shape == (256, 256) and region.dtype == np.float32
    inside = np.round(lm[[13, 14, 61, 291], :2]).astype(int)  # lips and corners
    assert (region[inside[:, 1], inside[:, 0]] > 0.99).all()
    brows = np.round(lm[[105, 334, 10], :2]).astype(int)  # eyebrows, forehead
    assert (region[brows[:, 1], brows[:, 0]] < 0.01).all()
    assert (region[:20, :20] == 1.0).all()
    below = np.round(lm[14, :2] + [0, 0.12 * L.iod(lm)]).astype(int)  # inside the margin
    assert region[below[1], below[0]] > 0.5
    away = lm.copy()
    away[:, 1] += 1000  # the mouth below the window: only where the warp has no texture
    assert np.array_equal(generator_region(away, valid), 1.0 - valid)


@pytest.mark.parametrize("region", ["mouth", "all"])
def test_generator_draws_only_in_its_region(tiny_models, astronaut_bgr, region):
    from dataclasses import replace

    from streamer.neural import generator_region, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=256))
    cfg = replace(config(tiny_models), generator_region=region)
    portrait = with_embedding(portrait, [astronaut_bgr], cfg)
    target = portrait.crop_landmarks.copy()
    target[14, 1] += 0.05 * 256  # open the mouth
    renderer = create_renderer(portrait, cfg)
    begun = renderer.begin(target)
    out = renderer.finish(begun).astype(int)
    plain = create_renderer(portrait, config(tiny_models, "warp")).render(target).astype(int)
    diff = np.abs(out - plain).max(axis=2)
    w = begun.window
    far = np.ones((256, 256), bool)  # crop pixels outside G's region, and outside its window
    if region == "mouth":
        window_region = generator_region(w.landmarks(target), begun.feed["valid"][0, 0])
        far[w.y0 : w.y0 + w.side, w.x0 : w.x0 + w.side] = cv2.resize(
            window_region, (w.side, w.side)) < 1e-3
        mouth = np.round(target[[13, 14], :2].mean(axis=0)).astype(int)
        assert diff[mouth[1], mouth[0]] > 0  # G draws the mouth
    else:
        far[w.y0 : w.y0 + w.side, w.x0 : w.x0 + w.side] = False
    assert diff[far].max() == 0  # the warp's pixels, exactly
    assert diff[~far].mean() > 0
    with pytest.raises(ValueError, match="generator_region"):
        create_renderer(portrait, replace(cfg, generator_region="face"))


def test_g_is_blended_over_the_warp_as_over_its_whole_window(tiny_models, astronaut_bgr):
    """The blend is worked out only where G's mask is not 0 (elsewhere it leaves the warp's
    pixel): the crop is m·drawn + (1 − m)·warp over the whole window, to the level."""
    from streamer.neural import _edge_taper, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=256))
    portrait = with_embedding(portrait, [astronaut_bgr], config(tiny_models))
    target = portrait.crop_landmarks.copy()
    target[14, 1] += 0.05 * 256  # open the mouth
    renderer = create_renderer(portrait, config(tiny_models))
    begun = renderer.begin(target)
    out = renderer.finish(begun)
    drawn, mask = renderer.run(begun.feed)
    mask = mask * _edge_taper(mask.shape[0]) * begun.region
    w = begun.window
    drawn, mask = (cv2.resize(a, (w.side, w.side)) for a in (drawn, mask))
    assert 0 < np.count_nonzero(mask) < 0.5 * mask.size  # G's region: part of the window
    warp = begun.warped.crop[w.y0 : w.y0 + w.side, w.x0 : w.x0 + w.side]
    m = mask[:, :, None]
    expected = np.clip(m * drawn + (1.0 - m) * warp + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(out[w.y0 : w.y0 + w.side, w.x0 : w.x0 + w.side], expected)


def test_a_black_and_white_photo_stays_black_and_white(tiny_models, astronaut_bgr):
    """G learned colour faces; what it draws on a grey photo is grey (the warp's mouth
    colours come from the photo's own lips)."""
    import cv2

    from streamer.neural import is_grey, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    grey = cv2.cvtColor(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert is_grey(grey) and not is_grey(astronaut_bgr)
    outs = {}
    for name, image in (("grey", grey), ("colour", astronaut_bgr)):
        portrait = enroll_images([image], EnrollConfig(crop_size=256))
        portrait = with_embedding(portrait, [image], config(tiny_models))
        target = portrait.crop_landmarks.copy()
        target[14, 1] += 0.05 * 256  # open the mouth
        outs[name] = create_renderer(portrait, config(tiny_models)).render(target).astype(int)
    spread = {k: np.abs(np.diff(v, axis=2)).max() for k, v in outs.items()}
    assert spread["grey"] <= 2 < spread["colour"]


def test_portrait_without_embedding_is_embedded_on_load(tiny_models, astronaut_portrait):
    assert astronaut_portrait.psi.size == 0
    out = create_renderer(astronaut_portrait, config(tiny_models)).render(
        astronaut_portrait.crop_landmarks)
    assert out.shape == (256, 256, 3)


def test_auto_picks_neural_only_when_installed(tiny_models, tmp_path):
    from streamer.renderer import resolve_name

    assert resolve_name(config(tiny_models, "auto")) == "neural"
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    warp_only = {k: v for k, v in manifest["models"].items() if k.startswith("warp_")}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": warp_only}))
    assert resolve_name(config(tmp_path, "auto")) == "warp"
    assert resolve_name(config(tmp_path, "warp")) == "warp"


def test_fine_tuned_generator_lives_in_the_portrait(tiny_models, astronaut_portrait,
                                                    astronaut_bgr, tmp_path):
    pytest.importorskip("torch")
    from models.finetune import FinetuneOptions
    from models.personalize import personalize
    from streamer.neural import shot_crops, with_embedding

    cfg = config(tiny_models)
    portrait = with_embedding(astronaut_portrait, [astronaut_bgr], cfg)
    shots = shot_crops(portrait, [astronaut_bgr])
    tuned = personalize(portrait, shots, FinetuneOptions(steps=3, augmented=2, lr_g=1e-2),
                        progress=False, config=cfg)
    assert tuned.generator.size > 0 and not np.array_equal(tuned.psi, portrait.psi)
    save_portrait(tuned, tmp_path / "t.headcast")
    loaded = load_portrait(tmp_path / "t.headcast")
    target = loaded.crop_landmarks
    a = create_renderer(loaded, cfg).render(target)
    b = create_renderer(portrait, cfg).render(target)
    assert not np.array_equal(a, b)


def test_corrupt_fine_tuned_generator_is_a_named_error(tiny_models, astronaut_portrait):
    from dataclasses import replace

    broken = replace(astronaut_portrait, generator=np.frombuffer(b"not onnx", np.uint8))
    with pytest.raises(ModelFileError, match="fine-tuned generator"):
        create_renderer(broken, config(tiny_models))


def test_fp16_generator_is_picked_by_precision_and_draws_as_the_float_one(
        tiny_models, astronaut_bgr, tmp_path):
    """export.half writes the generator in half precision beside the float one (inputs and
    outputs float32, the graph sorted so that the ONNX checker takes it, listed in the
    manifest with its sha256); `precision="fp16"` renders with that file."""
    import shutil
    from dataclasses import replace

    import onnx

    from export.half import add_fp16_generator
    from streamer.neural import NeuralRenderer, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=512))
    portrait = with_embedding(portrait, [astronaut_bgr], config(models))
    fp32 = NeuralRenderer(portrait, config(models))
    target = portrait.crop_landmarks.copy()
    target[14, 1] += 0.06 * 512
    scores = add_fp16_generator(models, "small", [fp32.begin(target).feed], "test")
    assert scores["drawn_psnr_db"] > 50.0 and scores["mask_max_abs"] < 0.01

    half = onnx.load(str(models / "generator_small_fp16.onnx"))
    weights = [t for t in half.graph.initializer if t.dims and np.prod(t.dims) > 64]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert {i.type.tensor_type.elem_type for i in half.graph.input} == {onnx.TensorProto.FLOAT}

    fp16 = replace(config(models), precision="fp16")
    a, b = fp32.render(target), create_renderer(portrait, fp16).render(target)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    (models / "generator_small_fp16.onnx").unlink()  # the fp16 renderer reads that file
    with pytest.raises(ModelFileError, match="generator_small_fp16"):
        create_renderer(portrait, fp16)


def test_int8_generator_is_picked_by_precision_and_stays_close(tiny_models, astronaut_bgr,
                                                               tmp_path):
    import shutil
    from dataclasses import replace

    from export.quantize import add_int8_generator
    from streamer.neural import NeuralRenderer, with_embedding
    from streamer.portrait import EnrollConfig, enroll_images

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    portrait = enroll_images([astronaut_bgr], EnrollConfig(crop_size=512))
    portrait = with_embedding(portrait, [astronaut_bgr], config(models))
    fp32 = NeuralRenderer(portrait, config(models))
    targets = []
    for opening in np.linspace(0.0, 0.08, 12):
        target = portrait.crop_landmarks.copy()
        target[14, 1] += opening * 512
        targets.append(target)
    feeds = [fp32.begin(t).feed for t in targets]
    scores = add_int8_generator(models, "small", feeds[::2], feeds[1::2], "test")
    assert scores["drawn_psnr_db"] > 30.0 and scores["mask_mean_abs"] < 0.02

    int8 = create_renderer(portrait, replace(config(models), precision="int8"))
    a, b = fp32.render(targets[-1]), int8.render(targets[-1])
    assert not np.array_equal(a, b)  # another model ran…
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0  # …that draws the same face
    with pytest.raises(ValueError, match="precision"):
        create_renderer(portrait, replace(config(models), precision="fp8"))

    # A fine-tuned generator has no int8 version: it runs as stored, in fp32.
    blob = np.frombuffer((models / "generator_small.onnx").read_bytes(), np.uint8)
    tuned = replace(portrait, generator=blob)
    c = create_renderer(tuned, replace(config(models), precision="int8")).render(targets[-1])
    assert np.array_equal(a, c)


def test_the_benchmarks_measure_the_model_folder_they_are_given(tiny_models, data_dir, tmp_path,
                                                                 capsys):
    """--model-dir (speed, quality, kshot): the embedding, generator and fine-tuning weights
    all come from that folder. The tiny model's ψ does not fit the shipped generator, nor the
    shipped ψ the tiny one, so a run that mixed the two would fail."""
    from benchmarks import kshot, quality, speed
    from streamer.video_io import read_video_frames

    assert speed.main(["--model-dir", str(tiny_models), "--renderer", "neural", "--frames", "6",
                       "--portraits", "mona_lisa", "--data", str(data_dir)]) == 0
    assert f"models {tiny_models}" in capsys.readouterr().out
    quality.main(["--model-dir", str(tiny_models), "--renderer", "neural", "--frames", "4",
                  "--protocol", "cross", "--portraits", "einstein", "--cross-clips",
                  "woman_long_expressive", "--sheet-frames", "1", "--data", str(data_dir),
                  "--out", str(tmp_path / "quality")])
    assert "einstein" in (tmp_path / "quality" / "quality.md").read_text()
    frames = [f for _, f in zip(range(12), read_video_frames(
        data_dir / "driving" / "woman_long_expressive.mp4"), strict=False)]
    lms = kshot.track_all(frames)
    cfg = kshot.KShotConfig(data=data_dir, finetune_steps=2, model_dir=tiny_models)
    portrait = kshot.make_portrait(frames, lms, 2, cfg, finetune=True)
    assert portrait.embedding.shape == (32,) and portrait.generator.size  # the tiny E, tuned G
    scores, _ = kshot.evaluate(portrait, "neural", frames, lms, np.array([9, 11]),
                               model_dir=tiny_models)
    assert len(scores.face_psnr) == 2
    for tool in (speed, quality, kshot):
        with pytest.raises(SystemExit):
            tool.main(["--model-dir", str(tmp_path)])  # no manifest.json there
        assert "no manifest.json there" in capsys.readouterr().err
