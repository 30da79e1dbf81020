"""PPO for CoinRun agents, with atomic checkpoints and resume.

Defaults follow the article's PPO (64 envs x 256 steps, 8 minibatches, 3 epochs, lr 5e-4,
entropy 0.01, clip 0.2, value clipping, gamma 0.999, lambda 0.95, grad-norm 0.5, reward
normalisation by the running std of discounted returns).

>>> from rlvision_widgets.training import PPOConfig, train
>>> train("runs/demo", PPOConfig(total_steps=1_000_000))          # doctest: +SKIP
>>> train("runs/demo", resume=True)                                # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..agents.checkpoint import load_checkpoint, save_checkpoint
from ..agents.networks import build_network
from ..agents.sampling import sample_with_log_probs
from ..environment.coinrun import CoinRunEnv, EnvOptions
from ..files import write_json_atomic
from ..rollouts.gae import gae

PRECISIONS = ("fp32", "bf16")
# settings a resumed run may change; everything else (hyperparameters) comes from the checkpoint
RUN_SETTINGS = ("total_steps", "num_threads", "checkpoint_every_s", "device")


@dataclass
class PPOConfig:
    """PPO hyperparameters and run settings.

    ``num_threads`` is torch's intra-op thread count for the run, the caller's choice: 0 (the
    default) leaves torch's setting alone. It is stored in checkpoints, but a resumed run
    never takes it from there (it belongs to the machine, not the run): it uses the resuming
    caller's value, 0 when the caller passes no config.

    >>> cfg = PPOConfig(total_steps=1_000_000, num_threads=1)
    >>> cfg.num_steps, cfg.epochs, cfg.lr, cfg.network
    (256, 3, 0.0005, 'compact')
    >>> PPOConfig.from_dict({"lr": 1e-4, "not_a_setting": 1}).lr     # unknown keys ignored
    0.0001
    >>> PPOConfig(precision="fp16")
    Traceback (most recent call last):
    ...
    ValueError: precision must be one of ('fp32', 'bf16'), got 'fp16'
    """

    total_steps: int = 25_000_000
    num_steps: int = 256
    num_minibatches: int = 8
    epochs: int = 3
    lr: float = 5e-4
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    clip: float = 0.2
    gamma: float = 0.999
    lam: float = 0.95
    max_grad_norm: float = 0.5
    normalize_rewards: bool = True
    network: str = "compact"
    precision: str = "fp32"
    seed: int = 0
    num_threads: int = 0
    checkpoint_every_s: float = 300.0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("total_steps", "num_steps", "num_minibatches", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError(f"need 0 < gamma <= 1 and 0 <= lam <= 1, got {self.gamma}, {self.lam}")
        if isinstance(self.num_threads, bool) or int(self.num_threads) < 0:
            raise ValueError(
                f"num_threads must be >= 0 (0 = leave torch's setting alone), got "
                f"{self.num_threads!r}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class ReturnNormalizer:
    """Scales rewards by the running std of discounted returns (as in baselines' VecNormalize)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0):
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4
        self.gamma, self.clip = gamma, clip

    def __call__(self, rew: np.ndarray, first: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + rew
        self._update(self.ret)
        out = np.clip(rew / math.sqrt(self.var + 1e-8), -self.clip, self.clip)
        self.ret[first] = 0.0
        return out.astype(np.float32)

    def _update(self, x: np.ndarray) -> None:
        bm, bv, bc = x.mean(), x.var(), x.size
        delta, tot = bm - self.mean, self.count + bc
        m2 = self.var * self.count + bv * bc + delta**2 * self.count * bc / tot
        self.mean, self.var, self.count = self.mean + delta * bc / tot, m2 / tot, tot

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "retnorm.ret": torch.from_numpy(self.ret.copy()),
            "retnorm.stats": torch.tensor([self.mean, self.var, self.count], dtype=torch.float64),
        }

    def load(self, t: dict[str, torch.Tensor]) -> None:
        if t["retnorm.ret"].numel() == self.ret.size:
            self.ret = t["retnorm.ret"].numpy().astype(np.float64)
        self.mean, self.var, self.count = (float(v) for v in t["retnorm.stats"])


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, p in enumerate(opt.param_groups[0]["params"]):
        for k, v in opt.state.get(p, {}).items():
            out[f"adam.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def _load_optimizer(opt: torch.optim.Optimizer, t: dict[str, torch.Tensor]) -> None:
    for i, p in enumerate(opt.param_groups[0]["params"]):
        state = {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith(f"adam.{i}.")}
        if state:
            opt.state[p] = state


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """One PPO run in ``run_dir``: ``Trainer(run_dir, config, env_options).run()``.

    A run folder holds one trainer at a time (a lock file); ``resume=True`` continues the run
    from its latest checkpoint, keeping its hyperparameters (only the settings in
    ``RUN_SETTINGS`` may change). SIGINT/SIGTERM checkpoint and stop.

    >>> trainer = Trainer("runs/demo", PPOConfig(total_steps=1_000_000),
    ...                   EnvOptions(num_envs=64))                      # doctest: +SKIP
    >>> meta = trainer.run()                                           # doctest: +SKIP
    >>> meta["steps"] >= 1_000_000                                     # doctest: +SKIP
    True
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        config: PPOConfig | None = None,
        env_options: EnvOptions | None = None,
        *,
        resume: bool = False,
        progress: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.progress = progress
        if resume and not (self.run_dir / "latest.json").is_file():
            raise FileNotFoundError(
                f"--resume: {self.run_dir} has no latest.json; start a new run without --resume"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.run_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise FileExistsError(
                f"another trainer is running in {self.run_dir}; stop it "
                "first (SIGTERM checkpoints and exits)"
            ) from None
        try:
            self._setup(config, env_options, resume)
        except BaseException:
            self._lock.close()
            raise

    def _setup(
        self, config: PPOConfig | None, env_options: EnvOptions | None, resume: bool
    ) -> None:
        extra: dict[str, torch.Tensor] = {}
        if resume:
            self.model, meta, extra = load_checkpoint(self.run_dir, with_extra=True)
            saved = PPOConfig.from_dict(meta["training"])
            if config is not None:
                for name in RUN_SETTINGS:
                    setattr(saved, name, getattr(config, name))
            else:
                saved.num_threads = 0  # the stored count was the previous machine's
            self.config = saved
            self.env_options = EnvOptions.from_dict(meta["env"])
            self.steps, self.updates = int(meta["steps"]), int(meta["updates"])
            self.wall_time = float(meta["wall_time_s"])
            self.history = deque(meta.get("recent_successes", []), maxlen=500)
            self.episodes = int(meta.get("episodes", 0))
        else:
            if (self.run_dir / "latest.json").exists():
                raise FileExistsError(
                    f"{self.run_dir} already holds a run; pass resume=True "
                    "(--resume) to continue it or choose a new folder"
                )
            self.config = config or PPOConfig()
            self.env_options = env_options or EnvOptions()
            torch.manual_seed(self.config.seed)
            self.model = build_network(self.config.network)
            self.steps = self.updates = self.episodes = 0
            self.wall_time = 0.0
            self.history = deque(maxlen=500)
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        self.device = _device(cfg.device)
        self.model.to(self.device).train()
        if self.device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)
        # rand_seed varies with the update count so a resumed run sees fresh levels
        seed_opts = self.env_options.replace(
            rand_seed=(self.env_options.rand_seed or cfg.seed) + 7919 * self.updates
        )
        self.env = CoinRunEnv(seed_opts)
        self.normalizer = ReturnNormalizer(self.env.num_envs, cfg.gamma)
        if extra:
            _load_optimizer(self.opt, extra)
            self.normalizer.load(extra)
        torch.manual_seed(cfg.seed + 1_000_003 * self.updates)  # minibatch permutations
        # action sampling has its own stream, also re-derived from (seed, updates) on resume
        self.sampler = torch.Generator().manual_seed(
            int(np.random.SeedSequence([cfg.seed, self.updates, 1]).generate_state(1)[0])
        )
        self._stop = False

    # -- rollout -------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"
        )

    @torch.no_grad()
    def _policy(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._autocast():
            logits, value = self.model(torch.from_numpy(obs).to(self.device))
        act, logp = sample_with_log_probs(logits, self.sampler)
        return act, logp, value.float().cpu().numpy()

    def rollout(self) -> dict[str, np.ndarray]:
        T, N = self.config.num_steps, self.env.num_envs
        obs_buf = np.zeros((T, N, 64, 64, 3), np.uint8)
        act_buf = np.zeros((T, N), np.int64)
        logp_buf, val_buf, rew_buf = (np.zeros((T, N), np.float32) for _ in range(3))
        first_buf = np.zeros((T, N), bool)
        obs, _, first = self.env.observe()
        for t in range(T):
            obs_buf[t], first_buf[t] = obs, first
            act, logp, val = self._policy(obs)
            obs, rew, first = self.env.step(act)
            act_buf[t], logp_buf[t], val_buf[t] = act, logp, val
            rew_buf[t] = self.normalizer(rew, first) if self.config.normalize_rewards else rew
            for i in np.flatnonzero(first):
                self.history.append(float(rew[i] > 0))
                self.episodes += 1
        _, _, last_val = self._policy(obs)
        adv = gae(rew_buf, val_buf, first_buf, last_val, first, self.config.gamma, self.config.lam)
        return dict(
            obs=obs_buf, act=act_buf, logp=logp_buf, val=val_buf, adv=adv, ret=adv + val_buf
        )

    # -- update --------------------------------------------------------------------------------
    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        cfg, dev = self.config, self.device
        flat = {k: torch.from_numpy(v.reshape(-1, *v.shape[2:])) for k, v in batch.items()}
        n = flat["act"].shape[0]
        mb = n // cfg.num_minibatches
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg_loss", "vf_loss", "entropy", "approx_kl", "clipfrac")
        }
        for _ in range(cfg.epochs):
            perm = torch.randperm(n)
            for s in range(cfg.num_minibatches):
                idx = perm[s * mb : (s + 1) * mb]
                obs = flat["obs"][idx].to(dev)
                act, old_logp = flat["act"][idx].to(dev), flat["logp"][idx].to(dev)
                old_v, ret, adv = (flat[k][idx].to(dev) for k in ("val", "ret", "adv"))
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                with self._autocast():
                    logits, value = self.model(obs)
                dist = torch.distributions.Categorical(logits=logits.float())
                logp = dist.log_prob(act)
                ratio = torch.exp(logp - old_logp)
                pg_loss = torch.max(
                    -adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)
                ).mean()
                value = value.float()
                v_clipped = old_v + (value - old_v).clamp(-cfg.clip, cfg.clip)
                vf_loss = 0.5 * torch.max((value - ret) ** 2, (v_clipped - ret) ** 2).mean()
                entropy = dist.entropy().mean()
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.ent_coef * entropy
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.opt.step()
                with torch.no_grad():
                    stats["pg_loss"].append(pg_loss.item())
                    stats["vf_loss"].append(vf_loss.item())
                    stats["entropy"].append(entropy.item())
                    stats["approx_kl"].append(((ratio - 1) - torch.log(ratio)).mean().item())
                    stats["clipfrac"].append(((ratio - 1).abs() > cfg.clip).float().mean().item())
        out = {k: float(np.mean(v)) for k, v in stats.items()}
        v, r = batch["val"].ravel(), batch["ret"].ravel()
        out["explained_variance"] = float(1 - np.var(r - v) / (np.var(r) + 1e-8))
        return out

    # -- checkpoints -----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "env": self.env_options.to_dict(),
            "training": asdict(self.config),
            "steps": self.steps,
            "updates": self.updates,
            "episodes": self.episodes,
            "wall_time_s": round(self.wall_time, 1),
            "seeds": {"seed": self.config.seed, "env_rand_seed": self.env_options.rand_seed},
            "recent_successes": list(self.history),
            "success_rate_recent": self.success_rate,
            "torch": torch.__version__,
        }

    @property
    def success_rate(self) -> float | None:
        return float(np.mean(self.history)) if self.history else None

    def checkpoint(self) -> Path:
        name = f"ckpt-{self.steps:012d}"
        extra = {**_optimizer_tensors(self.opt), **self.normalizer.tensors()}
        self.model.eval()
        save_checkpoint(
            self.run_dir / name,
            self.model.to(memory_format=torch.contiguous_format),
            self.meta(),
            extra,
        )
        if self.device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)
        self.model.train()
        write_json_atomic(self.run_dir / "latest.json", {"checkpoint": name, "steps": self.steps})
        for old in sorted(self.run_dir.glob("ckpt-*"))[:-2]:  # keep the newest two
            shutil.rmtree(old, ignore_errors=True)
        return self.run_dir / name

    def _on_signal(self, signum, frame) -> None:
        self._stop = True

    # -- main loop -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until ``total_steps`` (or SIGINT/SIGTERM), checkpointing every few minutes."""
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        old_handlers = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread
            pass
        per_update = cfg.num_steps * self.env.num_envs
        bar = tqdm(
            total=cfg.total_steps,
            initial=self.steps,
            unit="step",
            unit_scale=True,
            disable=not self.progress,
            dynamic_ncols=True,
            desc="PPO",
        )
        last_ckpt = time.monotonic()
        log = open(self.run_dir / "log.jsonl", "a")
        try:
            while self.steps < cfg.total_steps and not self._stop:
                t0 = time.perf_counter()
                batch = self.rollout()
                t1 = time.perf_counter()
                stats = self.update(batch)
                dt = time.perf_counter() - t0
                self.steps += per_update
                self.updates += 1
                self.wall_time += dt
                rec = {
                    "steps": self.steps,
                    "updates": self.updates,
                    "wall_time_s": round(self.wall_time, 1),
                    "steps_per_s": round(per_update / dt, 1),
                    "rollout_s": round(t1 - t0, 2),
                    "update_s": round(dt - (t1 - t0), 2),
                    "success_rate": self.success_rate,
                    "episodes": self.episodes,
                    **{k: round(v, 5) for k, v in stats.items()},
                }
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.update(per_update)
                sr = self.success_rate
                bar.set_postfix(
                    sps=f"{per_update / dt:.0f}", success=f"{sr:.1%}" if sr is not None else "-"
                )
                if time.monotonic() - last_ckpt >= cfg.checkpoint_every_s:
                    self.checkpoint()
                    last_ckpt = time.monotonic()
            self.checkpoint()
        finally:
            log.close()
            bar.close()
            self.env.close()
            self._lock.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        return self.meta()


def train(
    run_dir: str | os.PathLike,
    config: PPOConfig | None = None,
    env_options: EnvOptions | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a PPO agent in ``run_dir``; returns the final checkpoint metadata.

    The same as ``Trainer(run_dir, config, env_options, resume=resume).run()``; what
    ``rlvision train`` runs.

    >>> meta = train("runs/demo", PPOConfig(total_steps=1_000_000))    # doctest: +SKIP
    >>> meta = train("runs/demo", PPOConfig(total_steps=2_000_000), resume=True)  # doctest: +SKIP
    """
    return Trainer(run_dir, config, env_options, resume=resume, progress=progress).run()
