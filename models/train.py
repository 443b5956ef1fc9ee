"""python -m models.train CONFIG.json: meta-learning of E, G and D (Zakharov et al. 2019, sec. 3.2).

Single process on CPU or GPU, or `torchrun --nproc_per_node N` (and multi-node torchrun) for
DistributedDataParallel; bf16 autocast on GPU. Resumes from OUT/checkpoint.pt when it exists;
appends JSON lines to OUT/metrics.jsonl; writes OUT/samples/step_XXXXXX.png grids.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from models import losses
from models.configs import TrainConfig, load_config
from models.data import Episodes, load_prepared
from models.networks import Discriminator, Embedder, Generator
from models.weights import load_states


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.rank, self.world = _init_distributed()
        cuda = torch.cuda.is_available()
        local = int(os.environ.get("LOCAL_RANK", 0))
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if config.threads and not cuda:
            torch.set_num_threads(config.threads)
        torch.backends.cudnn.benchmark = cuda  # one input size throughout: pick the fastest kernels
        torch.manual_seed(config.seed + self.rank)
        self.videos = load_prepared([Path(d) for d in config.data], config.val_identities)
        dims = config.dims
        self.E = Embedder(dims).to(self.device)
        self.G = Generator(dims).to(self.device)
        self.D = Discriminator(dims, len(self.videos)).to(self.device)
        self.opt_eg = torch.optim.Adam([*self.E.parameters(), *self.G.parameters()],
                                       lr=config.lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
        self.out = Path(config.out)
        self.step = 0
        self.best_gain = float("-inf")  # held-out PSNR gain over the warp of best.pt
        self.history: list[dict] = []  # the metrics records of fit()
        self._val_samples: list[dict[str, torch.Tensor]] | None = None
        self.ema: dict[str, torch.nn.Module] = {}  # "E", "G": averaged copies (config.ema)
        self._load()
        if config.ema and not self.ema:  # the average starts from the starting weights
            self.ema = {k: _frozen_copy(getattr(self, k)) for k in ("E", "G")}
        if self.world > 1:
            ids = [local] if cuda else None
            self.E = DistributedDataParallel(self.E, device_ids=ids)
            self.G = DistributedDataParallel(self.G, device_ids=ids)
            self.D = DistributedDataParallel(self.D, device_ids=ids)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext())

    # --- one step -----------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One E+G step, then (after adv_start) one D step. Each network runs one forward
        with gradients per backward, as DistributedDataParallel requires."""
        c = self.config
        b = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        adversarial = self.step >= c.adv_start
        with self.autocast:
            e_hat, psi = self.E(b["shots"], b["shot_landmarks"])
            out, drawn, mask = self.G(b["landmarks"], b["warp"], b["valid"], psi)
            out = losses.trained_image(out, drawn, mask, b, c.region_loss)
            loss, log = losses.content_loss(out.float(), b["target"], b["mouth"], c.w_mouth)
            if adversarial:
                fm, adv, w_i = losses.generator_adversarial(self.D, out, b["target"],
                                                            b["landmarks"], video=b["video"])
                loss = loss + c.w_fm * fm + c.w_adv * adv
                log.update(fm=fm.item(), adv_g=adv.item())
            else:
                with torch.no_grad():
                    w_i = _inner(self.D).W(b["video"])
            mch = losses.embedding_match(w_i.detach().float(), e_hat.float())
            loss = loss + c.w_mch * mch
        self.opt_eg.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_eg.step()
        self._update_ema()
        log.update(loss_eg=loss.item(), mch=mch.item(), mask=mask.mean().item())
        with torch.no_grad():  # the same content loss for the warp alone: the baseline
            _, base = losses.content_loss(b["warp"], b["target"], b["mouth"], c.w_mouth)
        log.update({f"{k}_warp": v for k, v in base.items()})
        if adversarial:
            log.update(self._d_step(b, out.detach(), e_hat.detach()))
        return log

    def _d_step(self, b: dict[str, torch.Tensor], fake: torch.Tensor,
                e_hat: torch.Tensor) -> dict[str, float]:
        """Hinge loss on real and fake together (one forward), plus L_MCH pulling W_i to ê."""
        c = self.config
        with self.autocast:
            real_score, fake_score, w = losses.discriminator_scores(
                self.D, b["target"], fake, b["landmarks"], video=b["video"])
            d_loss = losses.hinge_d(real_score, fake_score)
            d_loss = d_loss + c.w_mch * losses.embedding_match(w.float(), e_hat.float())
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        return {"loss_d": d_loss.item(), "real": real_score.mean().item(),
                "fake": fake_score.mean().item()}

    # --- the loop -----------------------------------------------------------------------
    def fit(self) -> list[dict]:
        c = self.config
        data = Episodes(self.videos, c.k, length=c.steps * c.batch, seed=c.seed * 1000 + self.rank,
                        nearest=c.nearest_source)
        order = range(self.step * c.batch, c.steps * c.batch)  # resumes where it stopped
        loader = torch.utils.data.DataLoader(
            data, batch_size=c.batch, sampler=order, num_workers=c.workers,
            persistent_workers=c.workers > 0, drop_last=True, pin_memory=self.device.type == "cuda",
            worker_init_fn=_one_thread,
        )
        self.history = []
        started = time.perf_counter()
        with _StopRequest() as stop:
            for batch in loader:
                log = self.train_step(batch)
                self.step += 1
                last = self.step == c.steps or self._out_of_time(started, stop.asked)
                if self.rank == 0:
                    self._after_step(log, batch, started, last)
                if last:
                    break
        if stop.asked and self.rank == 0:
            print(f"stopped at step {self.step} (Ctrl+C): validated and saved to "
                  f"{self.out / 'checkpoint.pt'}; the same command goes on from there")
        return self.history

    def _after_step(self, log: dict[str, float], batch: dict[str, torch.Tensor], started: float,
                    last: bool) -> None:
        """Rank 0's bookkeeping after a step: metrics, sample grid, validation, checkpoint
        (all of them on the last step)."""
        c = self.config
        if self.step % c.log_every == 0 or last:
            elapsed = time.perf_counter() - started
            record = {"step": self.step, "time_s": round(elapsed, 1), **_round(log)}
            self.history.append(record)
            self._append_metrics(record)
        if self.step % c.sample_every == 0 or last:
            self._save_grid(batch)
        if (self.step % c.val_every == 0 or last) and c.val_identities:
            scores = self.validate()
            self._append_metrics({"step": self.step, **scores})
            self._keep_best(scores)
        if self.step % c.checkpoint_every == 0 or last:
            self._save()

    def _out_of_time(self, started: float, asked: bool = False) -> bool:
        """Past the config's minutes, or a stop asked (Ctrl+C)? Decided by rank 0 and shared,
        so every process of a DistributedDataParallel run stops after the same step."""
        late = asked or bool(self.config.minutes
                             and time.perf_counter() - started > 60 * self.config.minutes)
        if self.world == 1:
            return late
        flag = torch.tensor(float(late), device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def _generate(self, b: dict[str, torch.Tensor], averaged: bool = False
                  ) -> tuple[torch.Tensor, ...]:
        """E then G on a batch already on the device → (G's own blend, drawn, mask); with
        averaged, their moving averages when the config keeps them."""
        E = self.ema["E"] if averaged and self.ema else _inner(self.E)
        G = self.ema["G"] if averaged and self.ema else _inner(self.G)
        _, psi = E(b["shots"], b["shot_landmarks"])
        return G(b["landmarks"], b["warp"], b["valid"], psi)

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema ← decay·ema + (1 − decay)·weights, for E and G after each of their steps:
        the held-out gain of single steps swings by ±0.1 dB (lab notes), their average less."""
        if not self.ema:
            return
        for name, averaged in self.ema.items():
            live = _inner(getattr(self, name)).state_dict()
            for key, value in averaged.state_dict().items():
                if value.is_floating_point():
                    value.lerp_(live[key], 1.0 - self.config.ema)
                else:
                    value.copy_(live[key])

    def _render(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """_generate(), its out held to G's region when the config trains that way."""
        out, drawn, mask = self._generate(b)
        return losses.trained_image(out, drawn, mask, b, self.config.region_loss), drawn, mask

    @torch.no_grad()
    def content_loss(self, batch: dict[str, torch.Tensor]) -> float:
        """The content loss of a fixed batch (no update): smoke tests watch it fall."""
        b = {k: v.to(self.device) for k, v in batch.items()}
        out, _, _ = self._render(b)
        loss, _ = losses.content_loss(out.float(), b["target"], b["mouth"], self.config.w_mouth)
        return loss.item()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR of G's own blend, of the plain warp, and of G held to its region as the runtime
        shows it (`_region`), against the target on held-out identities."""
        if self._val_samples is None:  # the same episodes every time: built once
            c = self.config
            try:
                videos = load_prepared([Path(d) for d in c.data], only_identities=c.val_identities)
            except FileNotFoundError:
                self._val_samples = []
            else:
                data = Episodes(videos, c.k, length=c.val_episodes, seed=12345,
                                nearest=c.nearest_source)
                self._val_samples = [data[i] for i in range(len(data))]
        if not self._val_samples:
            return {}
        self.E.eval(), self.G.eval()
        scores: dict[str, list[float]] = {}
        for sample in self._val_samples:
            b = {k: v[None].to(self.device) for k, v in sample.items()}
            out, drawn, mask = self._generate(b, averaged=True)
            held = losses.held_to_region(b["warp"], drawn, mask, b["region"])
            for name, image in (("", out), ("_warp", b["warp"]), ("_region", held)):
                scores.setdefault(f"val_psnr{name}", []).append(_psnr(image, b["target"]))
                scores.setdefault(f"val_mouth_psnr{name}", []).append(
                    _psnr(image, b["target"], b["mouth"]))
        self.E.train(), self.G.train()
        return {k: float(np.mean(v)) for k, v in scores.items()}

    # --- files --------------------------------------------------------------------------
    def _append_metrics(self, record: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")

    @torch.no_grad()
    def _save_grid(self, batch: dict[str, torch.Tensor]) -> None:
        """Rows: first shot, warp, landmarks, output, drawn, mask, target (up to 4 samples)."""
        b = {k: v[:4].to(self.device) for k, v in batch.items()}
        out, drawn, mask = self._render(b)
        cols = [b["shots"][:, 0], b["warp"], b["landmarks"] * 2 - 1, out, drawn,
                mask.expand(-1, 3, -1, -1) * 2 - 1, b["target"]]
        rows = [torch.cat([c[i].float() for c in cols], dim=2) for i in range(len(out))]
        grid = torch.cat(rows, dim=1).cpu().numpy().transpose(1, 2, 0)
        folder = self.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        image = np.clip((grid + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"step_{self.step:06d}.png"), image)

    def state(self) -> dict:
        return {
            "step": self.step,
            "config": asdict(self.config),
            "dims": asdict(self.config.dims),
            "E": _inner(self.E).state_dict(),
            "G": _inner(self.G).state_dict(),
            **{f"{k}_ema": m.state_dict() for k, m in self.ema.items()},
            "D": _inner(self.D).state_dict(),
            "opt_eg": self.opt_eg.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def _save(self, name: str = "checkpoint.pt") -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f"{name}.tmp"
        torch.save({**self.state(), "best_gain": self.best_gain}, tmp)
        tmp.replace(self.out / name)  # atomic: a crash never leaves half a file

    def _keep_best(self, scores: dict[str, float]) -> None:
        """Adversarial training wanders: also keep the checkpoint with the best held-out
        gain over the warp (face + mouth PSNR, of the image it was trained on), as
        OUT/best.pt."""
        if not scores:
            return
        shown = "_region" if self.config.region_loss else ""
        gain = (scores[f"val_psnr{shown}"] - scores["val_psnr_warp"]
                + scores[f"val_mouth_psnr{shown}"] - scores["val_mouth_psnr_warp"])
        if gain > self.best_gain:
            self.best_gain = gain
            self._save("best.pt")

    def _load(self) -> None:
        path = self.out / "checkpoint.pt"
        if not path.is_file():
            if self.config.init:
                _init_weights(self, Path(self.config.init))
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["dims"] != asdict(self.config.dims):
            raise ValueError(f"{path} was trained with other model dimensions")
        self.E.load_state_dict(state["E"])
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.config.ema and "E_ema" in state:
            self.ema = {k: _frozen_copy(getattr(self, k)) for k in ("E", "G")}
            for k, module in self.ema.items():
                module.load_state_dict(state[f"{k}_ema"])
        self.opt_eg.load_state_dict(state["opt_eg"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        self.best_gain = float(state.get("best_gain", float("-inf")))
        if self.rank == 0:
            _forget_metrics_after(self.out / "metrics.jsonl", self.step)


def _forget_metrics_after(path: Path, step: int) -> None:
    """Drop the metrics of steps past the checkpoint a run resumes from: they are trained
    again, and were listed twice (a resumed run's curves jumped back)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        path.write_text("".join(line + "\n" for line in kept))


class _StopRequest:
    """Ctrl+C (SIGINT) during training asks the loop to stop after the step it is in, as
    --minutes does (validated and saved); a second one stops at once. It had stopped at once,
    losing the steps since the last checkpoint (up to checkpoint_every)."""

    def __init__(self) -> None:
        self.asked = False
        self._before: object = None

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGINT, self._ask)
        return self

    def _ask(self, signum: int, frame: object) -> None:
        self.asked = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the next one stops at once
        print("stopping after this step (Ctrl+C again stops at once)", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)  # type: ignore[arg-type]


def _init_weights(trainer: Trainer, path: Path) -> None:
    """Start from exported weights (export.neural_export's .npz). D's per-video embeddings W
    are kept only when the video list has the same length."""
    dims, states = load_states(path)
    if dims != json.loads(json.dumps(asdict(trainer.config.dims))):
        raise ValueError(f"{path} has other model dimensions than {trainer.config.model}")
    d_state = states["D"]
    if d_state["W.weight"].shape != trainer.D.W.weight.shape:
        d_state["W.weight"] = trainer.D.W.weight.detach().cpu()
    trainer.E.load_state_dict(states["E"])
    trainer.G.load_state_dict(states["G"])
    trainer.D.load_state_dict(d_state)


def _frozen_copy(module: torch.nn.Module) -> torch.nn.Module:
    copied = copy.deepcopy(module).eval()
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied


def _one_thread(_worker: int) -> None:
    """A DataLoader worker computes one episode at a time: OpenCV's and torch's thread pools
    (as many threads as cores, in every worker) would only compete with the other workers."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _inner(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def _psnr(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> float:
    err = ((a.float() - b.float()) * 127.5) ** 2
    if region is not None:
        mse = (err * region).sum() / (3 * region.sum()).clamp_min(1)
    else:
        mse = err.mean()
    return float(10 * torch.log10(255.0**2 / mse.clamp_min(1e-6)))


def _round(log: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 5) for k, v in log.items()}


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    parser.add_argument("config", type=Path, help="JSON file of TrainConfig fields")
    parser.add_argument("--steps", type=int, default=None, help="override the config's steps")
    parser.add_argument("--out", default=None, help="override the config's output folder")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this much training (validated and saved first)")
    args = parser.parse_args(argv)
    try:  # every way out leaves torchrun's process group (it had only on a finished run)
        return _train(args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, steps=args.steps, out=args.out, minutes=args.minutes)
        trainer = Trainer(config)
    except (ValueError, FileNotFoundError) as exc:  # a config or data folder not usable
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if trainer.step >= config.steps:  # it had printed "from step 9 to 4" and exited 0
        print(f"{config.out}/checkpoint.pt is at step {trainer.step} already: give more steps "
              f"than that (--steps) to train on")
        return 0
    print(f"training {config.model} on {len(trainer.videos)} videos from step {trainer.step} "
          f"to {config.steps} on {trainer.device} ×{trainer.world}")
    try:
        trainer.fit()
    except KeyboardInterrupt:  # the second Ctrl+C: at once, from the last checkpoint
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
