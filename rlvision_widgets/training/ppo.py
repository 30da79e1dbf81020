"""PPO for CoinRun agents, with atomic checkpoints and resume.

Defaults follow the article's PPO (64 envs x 256 steps, 8 minibatches, 3 epochs, lr 5e-4,
entropy 0.01, clip 0.2, value clipping, gamma 0.999, lambda 0.95, grad-norm 0.5, reward
normalisation by the running std of discounted returns).

>>> from rlvision_widgets.training import PPOConfig, train
>>> train("runs/demo", PPOConfig(total_steps=1_000_000))          # doctest: +SKIP
>>> train("runs/demo", resume=True)                                # doctest: +SKIP
>>> train("runs/demo", {"total_steps": 50_000_000}, resume=True)   # doctest: +SKIP

On resume only the run settings (``RUN_SETTINGS``: step budget, threads, precision, checkpoint
interval, device) may change; a different network, env option, hyperparameter or seed is
refused with an error naming it. Files of a run folder (``.lock``, ``log.jsonl``) are never
opened through a symbolic link.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import signal
import stat
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..agents.checkpoint import (
    CheckpointError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from ..agents.networks import NETWORKS, build_network
from ..agents.sampling import sample_with_log_probs
from ..environment.coinrun import CoinRunEnv, EnvOptions
from ..files import write_json_atomic, write_text_atomic
from ..rollouts.gae import gae

PRECISIONS = ("fp32", "bf16")
# settings a resumed run may change; everything else (what defines the run: network, env
# options, hyperparameters, seed) comes from the checkpoint and may not differ from it
RUN_SETTINGS = ("total_steps", "num_threads", "precision", "checkpoint_every_s", "device")
_INT_FIELDS = ("total_steps", "num_steps", "num_minibatches", "epochs", "seed", "num_threads")
_FLOAT_FIELDS = (
    "lr",
    "ent_coef",
    "vf_coef",
    "clip",
    "gamma",
    "lam",
    "max_grad_norm",
    "checkpoint_every_s",
)
_CHECKPOINT_NAME = re.compile(r"ckpt-[0-9]+")


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
        for name in _INT_FIELDS:
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        for name in _FLOAT_FIELDS:
            v = getattr(self, name)
            if (
                isinstance(v, (bool, np.bool_))
                or not isinstance(v, (int, float, np.integer, np.floating))
                or not math.isfinite(v)
            ):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not isinstance(self.normalize_rewards, (bool, np.bool_)):
            raise ValueError(
                f"normalize_rewards must be True or False, got {self.normalize_rewards!r}"
            )
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {sorted(NETWORKS)}, got {self.network!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("total_steps", "num_steps", "num_minibatches", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError(f"need 0 < gamma <= 1 and 0 <= lam <= 1, got {self.gamma}, {self.lam}")
        for name in ("lr", "clip", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("ent_coef", "vf_coef", "checkpoint_every_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be in [0, 2**31), got {self.seed!r}")
        if int(self.num_threads) < 0:
            raise ValueError(
                f"num_threads must be >= 0 (0 = leave torch's setting alone), got "
                f"{self.num_threads!r}"
            )
        _check_device_name(self.device)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PPOConfig:
        """A config from a dict (a checkpoint's ``training`` section); unknown keys ignored."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a training config must be a JSON object, got {type(d).__name__}")
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


def _check_device_name(name: Any) -> None:
    if name == "auto":
        return
    try:
        if not isinstance(name, str):
            raise TypeError
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {name!r}"
        ) from None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available here; use device 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise ValueError(f"device {name!r} is not supported: use 'auto', 'cpu' or 'cuda'")
    return device


def open_run_file(path: str | os.PathLike, mode: str) -> IO[Any]:
    """Open a file of a run folder without following a symbolic link: ``mode`` "a" (append,
    created if missing), "r+" (read/write, created if missing, never truncated) or "r".

    A symbolic link or anything but a regular file is refused (ValueError), so a planted link
    cannot make the trainer truncate or append to a file elsewhere.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open_run_file(os.path.join(d, "log.jsonl"), "a") as f:
    ...     _ = f.write("{}\\n")
    >>> os.symlink(os.path.join(d, "log.jsonl"), os.path.join(d, "link"))
    >>> open_run_file(os.path.join(d, "link"), "a")
    Traceback (most recent call last):
    ...
    ValueError: ...link is a symbolic link; a run folder's files must be regular files: remove it
    """
    flags = {
        "a": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
        "r+": os.O_RDWR | os.O_CREAT,
        "r": os.O_RDONLY,
    }[mode]
    path = Path(path)
    refuse = f"{path} is a symbolic link; a run folder's files must be regular files: remove it"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise ValueError(refuse)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file; a run folder's files must be: remove it")
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(refuse) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"{path} is not a regular file; a run folder's files must be: remove it")
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode, encoding="utf-8")


def _read_latest(run_dir: Path) -> tuple[Path, int]:
    """The checkpoint folder and step count ``latest.json`` names, validated."""
    path = run_dir / "latest.json"
    try:
        with open_run_file(path, "r") as f:
            doc = json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path} is not valid JSON ({exc}); restore it or start anew"
        ) from None
    name = doc.get("checkpoint") if isinstance(doc, dict) else None
    steps = doc.get("steps") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not _CHECKPOINT_NAME.fullmatch(name):
        raise CheckpointError(
            f"{path} is corrupted: 'checkpoint' must name a ckpt-<steps> folder of the run, "
            f"got {name!r}; point it at the newest ckpt-* folder"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise CheckpointError(
            f"{path} is corrupted: 'steps' must be a non-negative integer, got {steps!r}"
        )
    if not (run_dir / name).is_dir():
        raise CheckpointError(
            f"{path} names {name}, which is not in {run_dir}; point it at the newest ckpt-* folder"
        )
    return run_dir / name, steps


def _config_changes(config: PPOConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, PPOConfig):
        return asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"config must be a PPOConfig, a dict of settings or None, got {type(config).__name__}"
        )
    known = {f.name for f in fields(PPOConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}; valid: {sorted(known)}")
    return dict(config)


def _check_update(cfg: PPOConfig, env_options: EnvOptions) -> None:
    samples = cfg.num_steps * env_options.num_envs
    if cfg.num_minibatches > samples:
        raise ValueError(
            f"num_minibatches {cfg.num_minibatches} is more than the {samples} samples of "
            f"an update (num_steps {cfg.num_steps} x num_envs {env_options.num_envs}); "
            "use fewer minibatches"
        )


def _refuse_changes(differences: list[str], run_dir: Path) -> None:
    if differences:
        raise ValueError(
            f"cannot resume {run_dir} with different settings: "
            + "; ".join(differences)
            + ". These define the run; start a new run folder to change them (on resume only "
            + ", ".join(RUN_SETTINGS)
            + " may change)"
        )


class Trainer:
    """One PPO run in ``run_dir``: ``Trainer(run_dir, config, env_options).run()``.

    A run folder holds one trainer at a time (a lock file). ``resume=True`` continues the run
    from its latest checkpoint: ``config`` is then None (keep everything), a dict of the
    settings to change, or a full :class:`PPOConfig`; ``env_options`` None, a dict or an
    :class:`EnvOptions`. Only the settings in ``RUN_SETTINGS`` may differ from the checkpoint;
    any other difference (network, env options, hyperparameters, seed) is a ValueError. A
    resume drops log lines past the checkpoint's step; on start, temporaries left by killed
    checkpoint writes are removed. SIGINT/SIGTERM checkpoint and stop.

    >>> trainer = Trainer("runs/demo", PPOConfig(total_steps=1_000_000),
    ...                   EnvOptions(num_envs=64))                      # doctest: +SKIP
    >>> meta = trainer.run()                                           # doctest: +SKIP
    >>> meta["steps"] >= 1_000_000                                     # doctest: +SKIP
    True
    >>> Trainer("runs/demo", {"total_steps": 2_000_000}, resume=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        config: PPOConfig | Mapping[str, Any] | None = None,
        env_options: EnvOptions | Mapping[str, Any] | None = None,
        *,
        resume: bool = False,
        progress: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.progress = progress
        if not resume:  # checked before the run folder is created
            if isinstance(config, Mapping):
                config = PPOConfig.from_dict(_config_changes(config))
            if isinstance(env_options, Mapping):
                env_options = EnvOptions.from_dict(env_options)
            config, env_options = config or PPOConfig(), env_options or EnvOptions()
            _check_update(config, env_options)
            _device(config.device)
        if resume and not (self.run_dir / "latest.json").is_file():
            raise FileNotFoundError(
                f"--resume: {self.run_dir} has no latest.json; start a new run without --resume"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open_run_file(self.run_dir / ".lock", "r+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise FileExistsError(
                f"another trainer is running in {self.run_dir}; stop it "
                "first (SIGTERM checkpoints and exits)"
            ) from None
        try:
            remove_stale_temporaries(self.run_dir)  # what killed checkpoint writes left
            self._setup(config, env_options, resume)
            if resume:
                self._prune_checkpoints()
        except BaseException:
            self._lock.close()
            raise

    def _resume_state(
        self,
        config: PPOConfig | Mapping[str, Any] | None,
        env_options: EnvOptions | Mapping[str, Any] | None,
    ) -> dict[str, torch.Tensor]:
        folder, _ = _read_latest(self.run_dir)
        self.model, meta, extra = load_checkpoint(folder, with_extra=True)
        where = folder / "config.json"
        try:
            saved = PPOConfig.from_dict(meta["training"])
            saved_env = EnvOptions.from_dict(meta["env"])
            counts = {k: meta[k] for k in ("steps", "updates")}
            counts["episodes"] = meta.get("episodes", 0)
            for k, v in counts.items():
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError(f"{k} must be a non-negative integer, got {v!r}")
            wall = meta["wall_time_s"]
            if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not wall >= 0:
                raise ValueError(f"wall_time_s must be a number >= 0, got {wall!r}")
            recent = meta.get("recent_successes", [])
            if not isinstance(recent, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in recent
            ):
                raise ValueError("recent_successes must be a list of numbers")
        except KeyError as exc:
            raise CheckpointError(
                f"{where} is missing {exc.args[0]!r}; not a training checkpoint"
            ) from None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where} has a bad training section: {exc}") from None
        changes = _config_changes(config)
        differences = [
            f"{k}: the run has {getattr(saved, k)!r}, asked for {v!r}"
            for k, v in changes.items()
            if k not in RUN_SETTINGS and v != getattr(saved, k)
        ]
        if isinstance(env_options, EnvOptions):
            env_options = env_options.to_dict()
        if env_options is not None:
            if not isinstance(env_options, Mapping):
                raise TypeError("env_options must be an EnvOptions, a dict or None")
            EnvOptions.from_dict({**saved_env.to_dict(), **env_options})  # validates the names
            differences += [
                f"env option {k}: the run has {getattr(saved_env, k)!r}, asked for {v!r}"
                for k, v in env_options.items()
                if v != getattr(saved_env, k)
            ]
        _refuse_changes(differences, self.run_dir)
        run = {k: v for k, v in changes.items() if k in RUN_SETTINGS}
        run.setdefault("num_threads", 0)  # the stored count was the previous machine's
        self.config = PPOConfig.from_dict({**asdict(saved), **run})
        # the last update may pass the run's own budget (updates are whole): that run is
        # finished, not refused; only a budget asked for below the trained steps is an error
        if "total_steps" in run and self.config.total_steps < counts["steps"]:
            raise ValueError(
                f"total_steps {self.config.total_steps:,} is below the {counts['steps']:,} "
                f"steps {self.run_dir} has trained; ask for more to continue the run"
            )
        self.env_options = saved_env
        self.steps, self.updates = counts["steps"], counts["updates"]
        self.episodes = counts["episodes"]
        self.wall_time = float(wall)
        self.history = deque((float(x) for x in recent), maxlen=500)
        self.log_lines_dropped = self._trim_log(self.steps)
        return extra

    def _trim_log(self, steps: int) -> int:
        """Drop log lines past ``steps`` (written after the checkpoint a resume starts from)
        and unreadable lines (a write cut by a kill); atomic. Returns how many were dropped."""
        path = self.run_dir / "log.jsonl"
        if not os.path.lexists(path):
            return 0
        with open_run_file(path, "r") as f:
            lines = f.read().splitlines()
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
                ok = isinstance(rec, dict) and int(rec["steps"]) <= steps
            except (ValueError, KeyError, TypeError):
                ok = False
            if ok:
                keep.append(line)
        if len(keep) != len(lines):
            write_text_atomic(path, "".join(line + "\n" for line in keep))
        return len(lines) - len(keep)

    def _setup(
        self,
        config: PPOConfig | Mapping[str, Any] | None,
        env_options: EnvOptions | Mapping[str, Any] | None,
        resume: bool,
    ) -> None:
        extra: dict[str, torch.Tensor] = {}
        self.log_lines_dropped = 0
        if resume:
            extra = self._resume_state(config, env_options)
            self._saved_steps: int | None = self.steps
        else:
            if (self.run_dir / "latest.json").exists():
                raise FileExistsError(
                    f"{self.run_dir} already holds a run; pass resume=True "
                    "(--resume) to continue it or choose a new folder"
                )
            self.config = config or PPOConfig()
            self.env_options = env_options or EnvOptions()
            self.steps = self.updates = self.episodes = 0
            self.wall_time = 0.0
            self.history = deque(maxlen=500)
            self._saved_steps = None
        cfg = self.config
        _check_update(cfg, self.env_options)
        self.device = _device(cfg.device)
        if not resume:
            torch.manual_seed(cfg.seed)
            self.model = build_network(cfg.network)
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
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
        self._saved_steps = self.steps
        self._prune_checkpoints()
        return self.run_dir / name

    def _prune_checkpoints(self) -> None:
        """Keep the newest two checkpoints and the one ``latest.json`` names (a kill between
        writing ``latest.json`` and pruning leaves a third; the next start removes it)."""
        latest = json.loads((self.run_dir / "latest.json").read_text())["checkpoint"]
        for old in sorted(self.run_dir.glob("ckpt-*"))[:-2]:
            if old.name != latest:
                shutil.rmtree(old, ignore_errors=True)

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
        log = open_run_file(self.run_dir / "log.jsonl", "a")
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
            if self.steps != self._saved_steps:  # never rewrite the checkpoint it resumed from
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
    config: PPOConfig | Mapping[str, Any] | None = None,
    env_options: EnvOptions | Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a PPO agent in ``run_dir``; returns the final checkpoint metadata.

    The same as ``Trainer(run_dir, config, env_options, resume=resume).run()``; what
    ``rlvision train`` runs.

    >>> meta = train("runs/demo", PPOConfig(total_steps=1_000_000))    # doctest: +SKIP
    >>> meta = train("runs/demo", {"total_steps": 2_000_000}, resume=True)  # doctest: +SKIP
    """
    return Trainer(run_dir, config, env_options, resume=resume, progress=progress).run()
