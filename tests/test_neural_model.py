"""models/: the few-shot networks, losses, data pipeline, meta-learning, fine-tuning and the
ONNX export of E and G (torch side)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from models import losses  # noqa: E402
from models.configs import MODEL_SIZES, TrainConfig, load_config  # noqa: E402
from models.networks import Discriminator, Embedder, Generator, NeuralDims  # noqa: E402

TINY = MODEL_SIZES["tiny"]


def test_generator_shapes_and_warp_trusting_start():
    G = Generator(TINY)
    s = TINY.size
    warp = torch.rand(2, 3, s, s) * 2 - 1
    out, drawn, mask = G(torch.rand(2, 3, s, s), warp, torch.ones(2, 1, s, s),
                         torch.zeros(2, TINY.psi_dim))
    assert out.shape == drawn.shape == (2, 3, s, s) and mask.shape == (2, 1, s, s)
    # Untrained, the blend mask keeps ~95% of the warp: training starts from the warp.
    assert 0.02 < float(mask.mean()) < 0.1
    assert float((out - warp).abs().mean()) < 0.1


def test_psi_layout_covers_every_adain_layer():
    for dims in MODEL_SIZES.values():
        G = Generator(dims)
        parts = G.split_psi(torch.zeros(1, dims.psi_dim))
        assert sum(p.shape[1] for p in parts) == dims.psi_dim
        assert len(parts) == 4 * dims.res_blocks + 2 * len(dims.dec)


def test_embedder_averages_k_frames():
    E = Embedder(TINY).eval()
    s = TINY.size
    x, y = torch.rand(1, 3, 3, s, s), torch.rand(1, 3, 3, s, s)
    e, psi = E(x, y)
    singles = torch.stack([E.frames(x[:, i], y[:, i]) for i in range(3)]).mean(0)
    assert torch.allclose(e, singles, atol=1e-5)
    assert psi.shape == (1, TINY.psi_dim)


def test_discriminator_projection_uses_the_video_embedding():
    D = Discriminator(TINY, num_videos=3).eval()
    s = TINY.size
    x, y = torch.rand(1, 3, s, s), torch.rand(1, 3, s, s)
    r0, feats, _ = D(x, y, w=torch.zeros(1, TINY.embed_dim))
    r1, _, _ = D(x, y, w=torch.ones(1, TINY.embed_dim))
    assert len(feats) == len(TINY.disc_ch) and r0.shape == (1,)
    assert not torch.allclose(r0, r1)
    _, _, w = D(x, y, video=torch.tensor([2]))  # meta-learning: the video's row W_i
    assert torch.equal(w, D.W.weight[2:3])


def test_small_model_is_about_a_gigaflop():
    from torch.utils.flop_counter import FlopCounterMode

    dims = MODEL_SIZES["small"]
    G = Generator(dims)
    s = dims.size
    with FlopCounterMode(display=False) as counter:
        G(torch.rand(1, 3, s, s), torch.rand(1, 3, s, s), torch.ones(1, 1, s, s),
          torch.zeros(1, dims.psi_dim))
    assert 0.8e9 < counter.get_total_flops() < 1.6e9


def test_ms_ssim_and_hinge_losses():
    a = torch.rand(2, 3, 64, 64)
    assert torch.allclose(losses.ms_ssim(a, a), torch.ones(2), atol=1e-4)
    assert float(losses.ms_ssim(a, torch.rand(2, 3, 64, 64)).mean()) < 0.5
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert float(losses.hinge_d(real, fake)) == pytest.approx(0.25 + 0.5)
    assert float(losses.hinge_g(fake)) == pytest.approx(1.0)


def test_ms_ssim_is_float32_inside_bf16_autocast():
    """bf16 autocast (the trainer's on GPU) ran MS-SSIM's blurs in bf16: variances of a real
    face came out negative, the loss NaN on CPU and the first GPU run diverged."""
    from skimage.data import astronaut

    face = torch.from_numpy(astronaut()[:256, 128:384].copy()).permute(2, 0, 1).float() / 255
    a = face[None]
    b = torch.roll(a, shifts=(1, 2), dims=(2, 3)) * 0.97 + 0.01
    plain = losses.ms_ssim(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = losses.ms_ssim(a, b)
        unguarded = losses._ms_ssim(a, b, 3)  # what it computed before
    assert mixed.dtype == torch.float32 and torch.allclose(mixed, plain, atol=1e-6)
    assert not torch.allclose(unguarded.float(), plain, atol=1e-3)  # the test can see the bug


def test_config_file_round_trip_and_unknown_keys(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": "tiny", "data": ["x"], "steps": 3}))
    config = load_config(path, out=str(tmp_path / "run"))
    assert config == TrainConfig(model="tiny", data=("x",), steps=3, out=str(tmp_path / "run"))
    path.write_text(json.dumps({"modle": "tiny"}))
    with pytest.raises(ValueError, match="modle"):
        load_config(path)


def test_a_shipped_config_is_found_by_its_name_outside_a_checkout(tmp_path, monkeypatch):
    """models.train models/configs/NAME.json (the README's command), or NAME.json, run where
    no checkout is (headcast installed from a wheel): the shipped config of that name. A
    file given that exists is taken as it is; other paths are not looked for."""
    monkeypatch.chdir(tmp_path)
    shipped = load_config(Path(__file__).parents[1] / "models" / "configs" / "tiny_smoke.json")
    assert load_config("models/configs/tiny_smoke.json") == shipped
    assert load_config("tiny_smoke.json") == shipped
    (tmp_path / "tiny_smoke.json").write_text(json.dumps({"model": "tiny", "steps": 7}))
    assert load_config("tiny_smoke.json").steps == 7  # the file here, not the shipped one
    for missing in ("elsewhere/tiny_smoke.json", "models/configs/no_such.json"):
        with pytest.raises(ValueError, match="no such config file"):
            load_config(missing)


# ---------------------------------------------------------------- real frames


@pytest.fixture(scope="module")
def prepared(data_dir, tmp_path_factory) -> Path:
    """Two short real clips prepared as models.prepare does (every 3rd frame)."""
    from models.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared")
    entries = prepare(data_dir / "driving", out, PrepareOptions(stride=3, end=0.7), workers=2,
                      only=["man_green_backdrop", "man_glasses_orange_wall"])
    assert {e["name"] for e in entries} == {"man_green_backdrop", "man_glasses_orange_wall"}
    return out


def test_prepare_writes_crops_and_landmarks(prepared):
    folder = prepared / "man_green_backdrop"
    frames = np.load(folder / "frames.npy", mmap_mode="r")
    lms = np.load(folder / "landmarks.npy")
    meta = json.loads((folder / "meta.json").read_text())
    assert frames.shape[1:] == (512, 512, 3) and lms.shape == (len(frames), 478, 3)
    assert max(meta["frames"]) < 0.7 * meta["frames_in_clip"]  # the evaluation part is left out
    # The face sits inside the crop, with room around it.
    assert lms[:, :468, 0].min() > 80 and lms[:, :468, 0].max() < 432


def test_episode_sample_is_the_runtime_warp(prepared):
    from models.data import Episodes, load_prepared

    videos = load_prepared([prepared])
    sample = Episodes(videos, k=3, length=4)[0]
    assert sample["shots"].shape == (3, 3, 256, 256)
    assert sample["warp"].shape == sample["target"].shape == (3, 256, 256)
    assert float(sample["shots"].min()) >= -1 and float(sample["shots"].max()) <= 1
    # The warp of another frame of the same video is close to the target (same face, framing).
    err_warp = float((sample["warp"] - sample["target"]).abs().mean())
    assert err_warp < 0.12
    assert 0 < float(sample["mouth"].mean()) < 0.2


def test_nearest_source_episodes_warp_from_the_closest_shot(prepared):
    from models.data import Episodes, load_prepared
    from streamer.references import shot_distances

    videos = load_prepared([prepared])
    near, far = Episodes(videos, k=6, length=8, nearest=1.0), Episodes(videos, k=6, length=8)
    errors = {"near": [], "far": []}
    for i in range(8):
        for name, data in (("near", near), ("far", far)):
            sample = data[i]
            errors[name].append(float((sample["warp"] - sample["target"]).abs().mean()))
        # the source is the nearest of the shots, by the runtime's distance
        sample = near[i]
        video = videos[int(sample["video"])]
        *shots, target = sample["frames"].tolist()
        gaps = shot_distances(video.landmarks[target], video.landmarks[shots])
        assert gaps[0] == gaps.min() and target not in shots
    # the same episodes (same seed) apart from where the warp starts: nearer is closer
    assert np.mean(errors["near"]) < np.mean(errors["far"])


def test_training_starts_from_exported_weights(prepared, tmp_path):
    from export.neural_export import save_weights
    from models.networks import Discriminator, Embedder, Generator
    from models.train import Trainer

    dims = MODEL_SIZES["tiny"]
    nets = {"E": Embedder(dims), "G": Generator(dims), "D": Discriminator(dims, 2)}
    for module in nets.values():
        for p in module.parameters():
            p.data.uniform_(-0.1, 0.1)
    save_weights(tmp_path / "w.npz", dims, nets)
    trainer = Trainer(TrainConfig(model="tiny", data=(str(prepared),), out=str(tmp_path / "run"),
                                  init=str(tmp_path / "w.npz")))
    for name, module in nets.items():
        mine = getattr(trainer, name).state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(mine[key], value), (name, key)
    with pytest.raises(ValueError, match="other model dimensions"):
        Trainer(TrainConfig(model="small", data=(str(prepared),), out=str(tmp_path / "r2"),
                            init=str(tmp_path / "w.npz")))


def test_training_smoke_loss_falls_and_resumes(prepared, tmp_path):
    from models.data import Episodes, load_prepared
    from models.train import Trainer

    config = TrainConfig(model="tiny", data=(str(prepared),), out=str(tmp_path / "run"),
                         val_identities=("man_glasses_orange_wall",), steps=40, batch=2, k=2,
                         lr_g=2e-3, adv_start=30, workers=0, log_every=1, sample_every=40,
                         val_every=20, val_episodes=2, checkpoint_every=20)
    held = Episodes(load_prepared([prepared], ("man_glasses_orange_wall",)), k=2, length=6,
                    seed=99)
    fixed = {k: torch.stack([held[i][k] for i in range(6)]) for k in held[0]}
    trainer = Trainer(config)
    before = trainer.content_loss(fixed)
    history = trainer.fit()
    assert trainer.content_loss(fixed) < before
    assert "loss_d" in history[-1]  # the discriminator joined after adv_start
    assert (tmp_path / "run" / "samples" / "step_000040.png").is_file()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 40 and "val_psnr_warp" in json.loads(lines[-1])
    assert (tmp_path / "run" / "best.pt").is_file()  # the best held-out checkpoint is kept
    resumed = Trainer(TrainConfig(**{**config.__dict__, "steps": 42}))
    assert resumed.step == 40
    assert len(resumed.fit()) == 2


def test_training_stops_at_its_time_limit_validated_and_saved(prepared, tmp_path):
    from models.train import Trainer

    config = TrainConfig(model="tiny", data=(str(prepared),), out=str(tmp_path / "run"),
                         val_identities=("man_glasses_orange_wall",), steps=1000, batch=2, k=2,
                         workers=0, log_every=100, sample_every=100, val_every=100,
                         val_episodes=2, checkpoint_every=100, minutes=1e-6)
    trainer = Trainer(config)
    history = trainer.fit()
    assert trainer.step == 1 and [r["step"] for r in history] == [1]  # the first step is late
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 1
    assert (tmp_path / "run" / "best.pt").is_file()  # validated before it stopped
    assert (tmp_path / "run" / "samples" / "step_000001.png").is_file()


def test_ctrl_c_stops_training_after_its_step_validated_and_saved(prepared, tmp_path,
                                                                     capsys):
    """Ctrl+C stopped at once with a traceback, losing the steps since the last checkpoint;
    and a resumed run listed the steps after that checkpoint twice in metrics.jsonl."""
    import os
    import signal

    from models.train import Trainer

    config = TrainConfig(model="tiny", data=(str(prepared),), out=str(tmp_path / "run"),
                         val_identities=("man_glasses_orange_wall",), steps=50, batch=2, k=2,
                         workers=0, log_every=1, sample_every=100, val_every=100,
                         val_episodes=2, checkpoint_every=100)
    trainer = Trainer(config)
    step = trainer.train_step

    def step_then_ctrl_c(batch):  # type: ignore[no-untyped-def]
        log = step(batch)
        if trainer.step == 2:  # the third step: the user presses Ctrl+C during it
            os.kill(os.getpid(), signal.SIGINT)
        return log

    trainer.train_step = step_then_ctrl_c  # type: ignore[method-assign]
    before = signal.getsignal(signal.SIGINT)  # pytest's, or ignored in a background job
    trainer.fit()
    assert trainer.step == 3 and "stopped at step 3 (Ctrl+C)" in capsys.readouterr().out
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGINT) == before  # put back as it was
    metrics = tmp_path / "run" / "metrics.jsonl"
    with metrics.open("a") as f:  # steps logged after the checkpoint, as a crash leaves them
        f.write(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    assert Trainer(config).step == 3
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [
        1, 2, 3, 3]  # the third step's losses, then its validation


def test_region_training_trains_the_image_the_runtime_shows(prepared, tmp_path):
    from models.data import Episodes, load_prepared
    from models.train import Trainer

    videos = load_prepared([prepared])
    sample = Episodes(videos, k=2, length=1)[0]
    region, valid, mouth = sample["region"][0], sample["valid"][0], sample["mouth"][0]
    # the runtime's region: G may draw around the mouth and where the warp has no texture
    assert float(region[mouth > 0].mean()) > 0.5
    assert float(region[(mouth == 0) & (valid > 0.99)].mean()) < 0.02
    assert torch.all(region[valid < 0.01] > 0.99)
    config = TrainConfig(model="tiny", data=(str(prepared),), out=str(tmp_path / "run"),
                         region_loss=True, steps=12, batch=2, k=2, lr_g=2e-3, adv_start=6,
                         workers=0, log_every=1, sample_every=100, checkpoint_every=100)
    held = Episodes(load_prepared([prepared]), k=2, length=4, seed=7)
    fixed = {k: torch.stack([held[i][k] for i in range(4)]) for k in held[0]}
    trainer = Trainer(config)
    with torch.no_grad():
        out, drawn, mask = trainer._render(fixed)
    outside = (fixed["region"] == 0).expand_as(out)
    assert torch.equal(out[outside], fixed["warp"][outside])  # outside its region: the warp
    assert not torch.equal(out, fixed["warp"])
    before = trainer.content_loss(fixed)
    trainer.fit()
    assert trainer.content_loss(fixed) < before


def test_finetune_changes_generator_and_psi(prepared):
    from models.data import load_prepared
    from models.finetune import FinetuneOptions, augment, finetune

    video = load_prepared([prepared])[0]
    shots = [video.shot(0), video.shot(5)]
    G, D = Generator(TINY), Discriminator(TINY, 1)
    psi = np.zeros(TINY.psi_dim, np.float32)
    tuned, psi2 = finetune(G, D, shots, np.zeros(TINY.embed_dim, np.float32), psi,
                           FinetuneOptions(steps=3, augmented=2, lr_g=1e-3))
    assert np.abs(psi2 - psi).max() > 0
    before = G.state_dict()["head.weight"]
    assert not torch.equal(tuned.state_dict()["head.weight"], before)
    # Augmentation moves the landmarks with the pixels.
    moved = augment(shots[0], np.random.default_rng(0))
    assert np.abs(moved.landmarks - shots[0].landmarks).max() > 1


def test_finetune_on_the_image_the_runtime_shows(prepared):
    from models.data import WarpInputs, load_prepared, sample_tensors
    from models.finetune import FinetuneOptions, finetune, shown

    video = load_prepared([prepared])[0]
    shots = [video.shot(0), video.shot(5)]
    G, D = Generator(TINY), Discriminator(TINY, 1)
    psi = torch.zeros(1, TINY.psi_dim)
    sample = sample_tensors(shots[:1], shots[1], WarpInputs(), TINY.size)
    b = {k: v[None] for k, v in sample.items()}
    held = shown(G, b, psi, FinetuneOptions(region_loss=True))
    own = shown(G, b, psi, FinetuneOptions(region_loss=False))
    outside = (b["region"] == 0).expand_as(held)
    assert torch.equal(held[outside], b["warp"][outside])  # the runtime shows the warp there
    assert not torch.equal(own[outside], b["warp"][outside])  # G's own blend does not
    _, psi2 = finetune(G, D, shots, np.zeros(TINY.embed_dim, np.float32), psi[0].numpy(),
                       FinetuneOptions(steps=3, augmented=2, lr_g=1e-3, region_loss=True))
    assert np.abs(psi2 - psi[0].numpy()).max() > 0


def test_anchor_targets_open_the_shot_mouth(prepared):
    """Anchors: the shot driven by the motion template's most open mouths, wider with gain."""
    from models.data import load_prepared
    from models.finetune import anchor_targets
    from streamer import landmarks as L

    shot = load_prepared([prepared])[0].shot(0)
    targets = anchor_targets(shot, 6, (1.5, 3.0))
    assert len(targets) == 6 and all(t.shape == (478, 3) for t in targets)
    gaps = np.array([L.mouth_gap(t) for t in targets])
    assert gaps.min() > L.mouth_gap(shot.landmarks) + 0.05
    assert gaps[3:].mean() > gaps[:3].mean() + 0.1  # the template's openings at gain 3
    assert anchor_targets(shot, 0, (1.0,)) == []


def test_anchors_hold_the_mouth_the_shots_do_not_show(prepared):
    """Fine-tuned on closed-mouth shots, G keeps drawing the anchors' mouths as the
    meta-learned G drew them when the anchors weigh in, and drifts without them. Over three
    random tiny models: one alone moved held / free between 0.58 and 0.83 with the seed."""
    from models.data import load_prepared
    from models.finetune import FinetuneOptions, anchor_set, finetune

    video = load_prepared([prepared])[0]
    shots = [video.shot(0)]
    base = dict(steps=12, augmented=4, lr_g=2e-3, batch=2, anchors=4, anchor_batch=2)
    embedding = np.zeros(TINY.embed_dim, np.float32)

    def drift(probe: list[dict], tuned: Generator, psi_t: np.ndarray) -> float:
        with torch.no_grad():
            return float(np.mean([losses.region_l1(
                tuned(a["landmarks"][None], a["warp"][None], a["valid"][None],
                      torch.from_numpy(psi_t)[None])[0], a["target"][None], a["mouth"][None])
                for a in probe]))

    held, free = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        G, D = Generator(TINY), Discriminator(TINY, 1)
        psi = np.random.default_rng(seed).normal(0, 0.5, TINY.psi_dim).astype(np.float32)
        probe = anchor_set(G.eval(), shots[0], psi, FinetuneOptions(anchors=4), TINY.size)
        held.append(drift(probe, *finetune(G, D, shots, embedding, psi,
                                           FinetuneOptions(**base))))
        free.append(drift(probe, *finetune(G, D, shots, embedding, psi,
                                           FinetuneOptions(**base, w_anchor=0.0))))
    assert np.mean(held) < 0.8 * np.mean(free)


def test_finetune_warps_each_shot_from_its_nearest_other_shot(prepared):
    """As the runtime does with references: a shot is warped from the nearest *other* shot
    (itself would teach G nothing); without references, always from the rendered shot."""
    from models.data import WarpInputs, load_prepared, sample_tensors
    from models.finetune import FinetuneOptions, training_set
    from streamer.neural import ShotCrop

    video = load_prepared([prepared])[0]
    twin = video.shot(10)
    twin = ShotCrop(twin.crop, twin.landmarks + np.float32(0.5))  # nearest to shot 1 by far
    shots = [video.shot(0), video.shot(10), twin]
    options = FinetuneOptions(augmented=0)
    near = training_set(shots, options, TINY.size, nearest=True)
    plain = training_set(shots, options, TINY.size)
    warp = WarpInputs()
    # Samples alternate flips: the first target (shot 1) is not flipped, the second is.
    want = sample_tensors([shots[2]], shots[1], warp, TINY.size)["warp"]
    assert torch.equal(near[0]["warp"], want)
    want_plain = sample_tensors([shots[0]], shots[1], warp, TINY.size)["warp"]
    assert torch.equal(plain[0]["warp"], want_plain)
    assert not torch.equal(near[0]["warp"], plain[0]["warp"])
    want = sample_tensors([shots[1]], shots[2], warp, TINY.size, flip=True)["warp"]
    assert torch.equal(near[1]["warp"], want)


def test_exported_embedder_and_generator_match_torch(tmp_path):
    from export.neural_export import build, export_neural, load_checkpoint, load_weights, parity

    dims = TINY
    state = {"dims": _asdict(dims), "E": Embedder(dims).state_dict(),
             "G": Generator(dims).state_dict(), "D": Discriminator(dims, 2).state_dict()}
    torch.save(state, tmp_path / "ckpt.pt")
    entries = export_neural(tmp_path / "ckpt.pt", tmp_path, "small", {})
    assert set(entries) == {"embedder_small", "generator_small", "weights_small"}
    E, G, _ = build(*load_checkpoint(tmp_path / "ckpt.pt"))
    assert parity(E, G, tmp_path / "embedder_small.onnx", tmp_path / "generator_small.onnx") < 1e-4
    E2, G2, D2 = load_weights(tmp_path / "neural_small.npz")  # where fine-tuning starts
    for a, b in zip(G.state_dict().values(), G2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_average_of_two_trainings_exports(tmp_path):
    """models.average: (1 − t)·A + t·B weight by weight, from a checkpoint and an exported .npz
    alike; the result exports; other dimensions or a weight outside [0, 1] are named errors."""
    from export.neural_export import build, load_checkpoint, save_weights
    from models.average import AverageError, average_files

    nets = [{"E": Embedder(TINY), "G": Generator(TINY), "D": Discriminator(TINY, 2)}
            for _ in range(2)]
    save_weights(tmp_path / "a.npz", TINY, nets[0])
    torch.save({"dims": _asdict(TINY), **{k: m.state_dict() for k, m in nets[1].items()}},
               tmp_path / "b.pt")
    a_w, b_w = (next(iter(n["G"].parameters())).data for n in nets)
    assert not torch.allclose(a_w, b_w)  # two different starts, or the test shows nothing
    for t in (0.0, 0.25, 1.0):
        out = average_files(tmp_path / "a.npz", tmp_path / "b.pt", t, tmp_path / f"{t}.pt")
        E, G, _ = build(*load_checkpoint(out))
        for key, value in G.state_dict().items():
            a, b = nets[0]["G"].state_dict()[key], nets[1]["G"].state_dict()[key]
            if value.is_floating_point():
                assert torch.allclose(value, (1 - t) * a + t * b, atol=1e-6), (t, key)
    with pytest.raises(AverageError, match="not in"):
        average_files(tmp_path / "a.npz", tmp_path / "b.pt", 1.5, tmp_path / "x.pt")
    small = {"E": Embedder(MODEL_SIZES["small"]), "G": Generator(MODEL_SIZES["small"]),
             "D": Discriminator(MODEL_SIZES["small"], 2)}
    save_weights(tmp_path / "small.npz", MODEL_SIZES["small"], small)
    with pytest.raises(AverageError, match="other dimensions"):
        average_files(tmp_path / "small.npz", tmp_path / "b.pt", 0.5, tmp_path / "y.pt")


def _asdict(dims: NeuralDims) -> dict:
    from dataclasses import asdict

    return asdict(dims)


def test_pack_and_unpack_carry_prepared_data(prepared, tmp_path):
    """Packed for the trip to a training machine: far smaller, and unpacked it trains."""
    from models.data import Episodes, load_prepared
    from models.pack import PackError, pack, unpack

    packed, back = tmp_path / "packed", tmp_path / "back"
    count = pack(prepared, packed)
    raw = sum(f.stat().st_size for f in prepared.rglob("frames.npy"))
    assert sum(f.stat().st_size for f in packed.iterdir()) < raw / 20
    assert unpack(packed, back, workers=2) == count
    with pytest.raises(PackError, match="is it a packed folder"):  # pack where unpack was meant
        pack(packed, tmp_path / "twice")
    assert not (tmp_path / "twice").exists()  # no empty folder left behind
    index = json.loads((prepared / "index.json").read_text())
    assert json.loads((back / "index.json").read_text()) == index
    for entry in index["videos"]:
        a, b = prepared / entry["name"], back / entry["name"]
        assert (a / "meta.json").read_text() == (b / "meta.json").read_text()
        lm_a, lm_b = np.load(a / "landmarks.npy"), np.load(b / "landmarks.npy")
        assert lm_b.dtype == np.float32 and np.abs(lm_a - lm_b).max() <= 1 / 32 + 1e-4
        fa, fb = np.load(a / "frames.npy"), np.load(b / "frames.npy")
        assert fa.shape == fb.shape
        mse = np.mean((fa.astype(float) - fb.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / mse) > 38  # dB
    assert Episodes(load_prepared([back]), k=2, length=1)[0]["target"].shape == (3, 256, 256)
    video = next(packed.glob("*.mp4"))
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])  # cut short
    with pytest.raises(PackError, match=video.name):
        unpack(packed, tmp_path / "again", workers=1)
    (packed / "index.json").write_text("{}")
    with pytest.raises(PackError, match="not an index"):
        pack(packed, tmp_path / "x")


def test_moving_average_of_weights_is_validated_saved_and_exported(prepared, tmp_path):
    from models.train import Trainer
    from models.weights import load_states

    config = TrainConfig(model="tiny", data=(str(prepared),), out=str(tmp_path / "run"),
                         val_identities=("man_glasses_orange_wall",), steps=6, batch=2, k=2,
                         lr_g=2e-3, adv_start=3, workers=0, log_every=1, sample_every=100,
                         val_every=6, val_episodes=2, checkpoint_every=6, ema=0.5)
    trainer = Trainer(config)
    start = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    assert all(torch.equal(start[k], v) for k, v in trainer.ema["G"].state_dict().items())
    trainer.fit()
    key = next(k for k, v in start.items() if v.is_floating_point() and v.numel() > 1)
    live, averaged = trainer.G.state_dict()[key], trainer.ema["G"].state_dict()[key]
    assert not torch.equal(averaged, live) and not torch.equal(averaged, start[key])
    _, states = load_states(tmp_path / "run" / "best.pt")
    assert torch.equal(states["G"][key], averaged)  # exported and fine-tuned from: the average
    resumed = Trainer(TrainConfig(**{**config.__dict__, "steps": 7}))
    assert torch.equal(resumed.ema["G"].state_dict()[key], averaged)


def test_train_refuses_what_cannot_train_with_one_line(tmp_path, capsys):
    """A missing or non-JSON config, counts of 0 or less, a data folder never prepared: each
    had been a traceback (steps 0 a run that did nothing and exited 0)."""
    from models.train import main

    notjson = tmp_path / "c.json"
    notjson.write_text("steps: 3")
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps({"model": "tiny", "steps": 0, "data": [str(tmp_path)]}))
    nodata = tmp_path / "nodata.json"
    nodata.write_text(json.dumps({"model": "tiny", "steps": 2, "data": [str(tmp_path / "x")],
                                  "out": str(tmp_path / "run")}))
    for config, said in ((tmp_path / "small_cpu", "no such config file (shipped: "),
                         (notjson, "not a JSON file of config fields"),
                         (zero, "steps must be a whole number, at least 1, not 0"),
                         (nodata, "no prepared videos here (no index.json)")):
        assert main([str(config)]) == 2
        assert said in capsys.readouterr().err


def test_train_leaves_its_process_group_however_it_ends(tmp_path, capsys):
    """Under torchrun, a run refused or already done had returned with its process group
    still open (only a finished run destroyed it)."""
    import torch.distributed as dist

    from models.train import main

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert main([str(tmp_path / "missing.json")]) == 2
        assert "no such config file" in capsys.readouterr().err
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_prepare_says_which_clips_it_skips_and_goes_on(data_dir, tmp_path, capsys):
    """A clip that cannot be read stopped the whole run (no index.json for the clips done);
    a clip with too few tracked frames was left out without a word, and a run that
    prepared nothing exited 0."""
    import shutil

    from models.prepare import main

    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "broken.mp4").write_text("not a video")
    shutil.copy(data_dir / "driving" / "man_green_backdrop.mp4", clips / "short.mp4")
    out = tmp_path / "prepared"
    assert main([str(clips), str(out), "--range", "0:0.5", "--stride", "8", "--size", "128",
                 "--workers", "1"]) == 1
    assert not (out / "index.json").exists()  # an index of nothing passed for prepared data
    err = capsys.readouterr().err
    assert "broken: skipped:" in err and "not a readable video" in err
    assert "short: skipped: 5 frames with a face (every --stride 8 of 39), 16 needed" in err
    assert main([str(clips), str(out), "--range", "0:0.5", "--stride", "2", "--size", "128",
                 "--workers", "1"]) == 0
    assert [v["name"] for v in json.loads((out / "index.json").read_text())["videos"]] == [
        "short"]
    with pytest.raises(SystemExit):
        main([str(clips), str(out), "--stride", "0"])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing"), str(out)])


def test_training_curves_refuse_a_folder_without_steps(tmp_path):
    """A missing run folder or an empty metrics.jsonl had failed deep in the plot."""
    from benchmarks.training_curves import main

    for run in (tmp_path / "nothing", tmp_path):
        if run == tmp_path:
            (tmp_path / "metrics.jsonl").write_text("\n")
        with pytest.raises(SystemExit) as info:
            main([str(run), "-o", str(tmp_path / "c.png")])
        assert info.value.code == 2
    assert not (tmp_path / "c.png").exists()
