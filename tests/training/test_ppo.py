"""PPO trainer: GAE, updates improve the objective, checkpoints, resume after SIGKILL."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rlvision_widgets.agents.checkpoint import CheckpointError, load_checkpoint
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.environment import EnvOptions
from rlvision_widgets.rollouts.gae import gae
from rlvision_widgets.training import PPOConfig, Trainer

TINY = dict(num_steps=16, num_minibatches=2, epochs=2, checkpoint_every_s=1e9, seed=3)


def tiny_opts(**kw):
    return EnvOptions(num_envs=4, rand_seed=5, **kw)


def test_gae_matches_direct_definition():
    rng = np.random.default_rng(0)
    T, N, g, l = 7, 3, 0.9, 0.8
    rew, val = (
        rng.normal(size=(T, N)).astype(np.float32),
        rng.normal(size=(T, N)).astype(np.float32),
    )
    firsts = rng.random((T, N)) < 0.3
    last_v, last_f = rng.normal(size=N).astype(np.float32), rng.random(N) < 0.3
    adv = gae(rew, val, firsts, last_v, last_f, g, l)
    nf = np.concatenate([firsts[1:], last_f[None]]).astype(np.float32)
    nv = np.concatenate([val[1:], last_v[None]])
    delta = rew + g * nv * (1 - nf) - val
    for n in range(N):
        for t in range(T):
            acc, disc = 0.0, 1.0
            for k in range(t, T):
                acc += disc * delta[k, n]
                if nf[k, n]:
                    break
                disc *= g * l
            assert adv[t, n] == pytest.approx(acc, rel=1e-4, abs=1e-5)


def _objective(trainer, batch):
    """The clipped PPO loss the trainer minimises, on the whole batch (and its policy term)."""
    cfg = trainer.config
    f = {k: torch.from_numpy(v.reshape(-1, *v.shape[2:])) for k, v in batch.items()}
    with torch.no_grad():
        logits, value = trainer.model(f["obs"])
        dist = torch.distributions.Categorical(logits=logits)
        ratio = torch.exp(dist.log_prob(f["act"]) - f["logp"])
        adv = (f["adv"] - f["adv"].mean()) / (f["adv"].std() + 1e-8)
        pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
        v_clip = f["val"] + (value - f["val"]).clamp(-cfg.clip, cfg.clip)
        vf = 0.5 * torch.max((value - f["ret"]) ** 2, (v_clip - f["ret"]) ** 2).mean()
        loss = pg + cfg.vf_coef * vf - cfg.ent_coef * dist.entropy().mean()
    return loss.item(), pg.item()


def test_ppo_updates_improve_the_objective(tmp_path):
    trainer = Trainer(
        tmp_path / "run", PPOConfig(**TINY, total_steps=10**6), tiny_opts(), progress=False
    )
    batch = trainer.rollout()
    loss0, pg0 = _objective(trainer, batch)
    assert pg0 == pytest.approx(0.0, abs=1e-5)  # ratio == 1 before any update: -mean(adv) == 0
    for _ in range(3):
        trainer.update(batch)
    loss1, pg1 = _objective(trainer, batch)
    assert pg1 < pg0 - 1e-3
    assert loss1 < loss0 - 1e-3


def test_checkpoint_resume_continues(tmp_path):
    run = tmp_path / "run"
    cfg = PPOConfig(**TINY, total_steps=2 * 64)
    meta = Trainer(run, cfg, tiny_opts(), progress=False).run()
    assert meta["steps"] == 128
    model, config = load_checkpoint(run)
    assert config["steps"] == 128 and config["env"]["num_envs"] == 4
    assert config["training"]["network"] == "compact" and config["wall_time_s"] > 0
    resumed = Trainer(run, PPOConfig(**TINY, total_steps=3 * 64), resume=True, progress=False)
    assert resumed.steps == 128 and resumed.updates == 2
    for a, b in zip(model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert resumed.opt.state, "optimizer state must be restored"
    assert resumed.run()["steps"] == 192
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(run, cfg, tiny_opts(), progress=False)


def test_sigkill_then_resume_loses_at_most_one_interval(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "rlvision_widgets.cli",
        "train",
        str(run),
        "--steps",
        "100000",
        "--num-envs",
        "4",
        "--num-steps",
        "16",
        "--epochs",
        "1",
        "--num-minibatches",
        "2",
        "--checkpoint-every",
        "0",
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            latest = run / "latest.json"
            if latest.exists() and json.loads(latest.read_text())["steps"] >= 3 * 64:
                break
            time.sleep(0.2)
        else:
            pytest.fail("trainer wrote no checkpoint within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = json.loads((run / "latest.json").read_text())["steps"]
    log_steps = [json.loads(l)["steps"] for l in (run / "log.jsonl").read_text().splitlines()]
    assert max(log_steps) - saved <= 64  # at most the update since the last checkpoint is lost
    # a kill between writing latest.json and pruning can leave one extra checkpoint ...
    assert len(list(run.glob("ckpt-*"))) <= 3
    t = Trainer(run, {"total_steps": saved + 64}, resume=True, progress=False)
    # ... which the resume prunes, keeping the one it starts from
    assert len(list(run.glob("ckpt-*"))) <= 2
    assert (run / f"ckpt-{saved:012d}").is_dir()
    assert t.steps == saved
    assert t.run()["steps"] == saved + 64
    log_steps = [json.loads(l)["steps"] for l in (run / "log.jsonl").read_text().splitlines()]
    assert log_steps == sorted(set(log_steps))  # lines past the checkpoint were dropped
    assert log_steps[-1] == saved + 64


def test_resume_prunes_a_checkpoint_a_kill_left_unpruned(tmp_path):
    """A kill between writing latest.json and pruning leaves three checkpoints; the resume
    removes the oldest and keeps the one it starts from."""
    import shutil

    run = tmp_path / "run"
    Trainer(run, PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False).run()
    (only,) = run.glob("ckpt-*")
    for fake in ("ckpt-000000000001", "ckpt-000000000002"):  # older than the real one
        shutil.copytree(only, run / fake)
    Trainer(run, PPOConfig(**TINY, total_steps=128), resume=True, progress=False)
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-000000000002", only.name]


def test_corrupted_and_mismatched_checkpoints_are_rejected(tmp_path):
    run = tmp_path / "run"
    Trainer(run, PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False).run()
    ckpt = run / json.loads((run / "latest.json").read_text())["checkpoint"]
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_agent(run)
    weights.write_bytes(b"not a safetensors file")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["files"].pop("model.safetensors")
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_agent(run)

    run2 = tmp_path / "run2"
    Trainer(run2, PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False).run()
    ckpt2 = run2 / json.loads((run2 / "latest.json").read_text())["checkpoint"]
    cfg = json.loads((ckpt2 / "config.json").read_text())
    cfg["network"]["convs"][1]["channels"] = 48
    (ckpt2 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_agent(run2)
    (ckpt2 / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_agent(run2)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)


def test_bad_training_config():
    with pytest.raises(ValueError, match="precision"):
        PPOConfig(precision="fp8")
    with pytest.raises(ValueError, match="num_steps"):
        PPOConfig(num_steps=0)


def test_one_trainer_per_run_folder_and_clear_resume_errors(tmp_path):
    first = Trainer(
        tmp_path / "run", PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False
    )
    with pytest.raises(FileExistsError, match="another trainer"):
        Trainer(tmp_path / "run", PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False)
    first.run()
    with pytest.raises(FileNotFoundError, match="no latest.json"):
        Trainer(tmp_path / "missing", resume=True, progress=False)
    assert not (tmp_path / "missing").exists()
    with pytest.raises(ValueError, match=r"lr: the run has 0\.0005, asked for 1\.0"):
        Trainer(tmp_path / "run", {"total_steps": 64, "lr": 1.0}, resume=True, progress=False)
    resumed = Trainer(
        tmp_path / "run",
        {"total_steps": 64, "checkpoint_every_s": 123.0},
        resume=True,
        progress=False,
    )
    assert resumed.config.checkpoint_every_s == 123.0 and resumed.config.lr == 5e-4


def test_rollout_samples_with_the_one_sampler_and_stores_its_log_probs(tmp_path):
    def rollout(name):
        t = Trainer(tmp_path / name, PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False)
        try:
            return t, t.rollout()
        finally:
            t.env.close()
            t._lock.close()

    trainer, batch = rollout("a")
    _, again = rollout("b")
    assert np.array_equal(batch["act"], again["act"])  # seeded: same run, same draws
    with torch.no_grad():
        logits, _ = trainer.model(torch.from_numpy(batch["obs"].reshape(-1, 64, 64, 3)))
    expected = torch.distributions.Categorical(logits=logits).log_prob(
        torch.from_numpy(batch["act"].ravel())
    )
    np.testing.assert_allclose(batch["logp"].ravel(), expected.numpy(), atol=1e-4)


def test_thread_count_is_the_callers_choice(tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        run = tmp_path / "run"
        Trainer(
            run, PPOConfig(**TINY, total_steps=64, num_threads=1), tiny_opts(), progress=False
        ).run()
        assert torch.get_num_threads() == 1  # asked for: set
        assert load_checkpoint(run)[1]["training"]["num_threads"] == 1  # stored, as before
        torch.set_num_threads(3)
        t = Trainer(run, resume=True, progress=False)  # no config: not the stored count
        assert t.config.num_threads == 0 and torch.get_num_threads() == 3
        t.env.close()
        t._lock.close()
        t = Trainer(run, {"total_steps": 128, "num_threads": 2}, resume=True, progress=False)
        assert t.config.num_threads == 2 and torch.get_num_threads() == 2
        t.env.close()
        t._lock.close()
        torch.set_num_threads(3)
        t = Trainer(
            tmp_path / "default", PPOConfig(**TINY, total_steps=64), tiny_opts(), progress=False
        )
        assert t.config.num_threads == 0 and torch.get_num_threads() == 3  # left alone
        t.env.close()
        t._lock.close()
        with pytest.raises(ValueError, match="num_threads"):
            PPOConfig(num_threads=-1)
    finally:
        torch.set_num_threads(before)


def test_config_fields_are_the_checkpoint_format():
    """PPOConfig is stored in every checkpoint (runs/reference included): same fields."""
    from dataclasses import fields

    assert [f.name for f in fields(PPOConfig)] == [
        "total_steps",
        "num_steps",
        "num_minibatches",
        "epochs",
        "lr",
        "ent_coef",
        "vf_coef",
        "clip",
        "gamma",
        "lam",
        "max_grad_norm",
        "normalize_rewards",
        "network",
        "precision",
        "seed",
        "num_threads",
        "checkpoint_every_s",
        "device",
    ]


def test_learning_curve_is_written_atomically(tmp_path):
    from rlvision_widgets.training.package import plot_learning_curve

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text(
        "\n".join(json.dumps({"steps": s, "success_rate": s / 10**6}) for s in (10**5, 2 * 10**5))
    )
    out = plot_learning_curve(run, tmp_path / "curve.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "run"]
