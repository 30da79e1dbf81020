"""Run folders: no writes through symbolic links, resume keeps what defines the run and applies
run settings, the log never repeats steps, damaged files give clear errors; and the real
reference run resumes with the next session's command (on a copy)."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from rlvision_widgets.agents.checkpoint import CheckpointError
from rlvision_widgets.cli import build_parser, main, train_settings
from rlvision_widgets.environment import EnvOptions
from rlvision_widgets.training import PPOConfig, Trainer
from rlvision_widgets.training.package import read_log

TINY = dict(num_steps=16, num_minibatches=2, epochs=1, checkpoint_every_s=1e9, seed=3)
PER_UPDATE = 16 * 4
REFERENCE = Path(__file__).resolve().parents[2] / "runs" / "reference"


def tiny_run(path, updates=1):
    Trainer(
        path,
        PPOConfig(**TINY, total_steps=updates * PER_UPDATE),
        EnvOptions(num_envs=4, rand_seed=5),
        progress=False,
    ).run()
    return path


def close(trainer):
    trainer.env.close()
    trainer._lock.close()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-update run; tests copy it before changing anything."""
    return tiny_run(tmp_path_factory.mktemp("finished") / "run")


@pytest.fixture
def run(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_symlinked_lock_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(target)
    with pytest.raises(ValueError, match=r"\.lock is a symbolic link"):
        Trainer(run, PPOConfig(**TINY, total_steps=64), EnvOptions(num_envs=4), progress=False)
    assert target.read_text() == "keep me"


def test_symlinked_log_is_refused_and_its_target_untouched(run, tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    (run / "log.jsonl").unlink()
    (run / "log.jsonl").symlink_to(target)
    with pytest.raises(ValueError, match=r"log\.jsonl is a symbolic link"):
        Trainer(run, {"total_steps": 2 * PER_UPDATE}, resume=True, progress=False)
    assert target.read_text() == ""
    assert (run / "log.jsonl").is_symlink()  # left for the user to inspect


def test_resume_keeps_the_step_budget_and_applies_only_run_settings(run, threads):
    a = build_parser().parse_args(["train", "--resume", str(run), "--threads", "1"])
    config, env = train_settings(a)
    assert (config, env) == ({"num_threads": 1}, {})  # nothing the user did not pass
    t = Trainer(run, config, env, resume=True, progress=False)
    close(t)
    assert t.config.total_steps == PER_UPDATE  # the run's, not a command-line default
    assert (t.config.num_threads, t.config.precision, t.config.seed) == (1, "fp32", 3)
    changes = {
        "total_steps": 3 * PER_UPDATE,
        "precision": "bf16",
        "checkpoint_every_s": 7.0,
        "num_threads": 2,
        "device": "cpu",
        "seed": 3,  # the run's own value: accepted
        "lr": 5e-4,
    }
    t = Trainer(run, changes, {"num_envs": 4}, resume=True, progress=False)
    close(t)
    assert {k: getattr(t.config, k) for k in changes} == changes
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "config, env, names",
    [
        ({"lr": 1e-3}, None, ["lr: the run has 0.0005, asked for 0.001"]),
        ({"seed": 4}, None, ["seed: the run has 3, asked for 4"]),
        ({"network": "article", "num_steps": 32}, None, ["network", "num_steps"]),
        ({}, {"num_envs": 8}, ["env option num_envs: the run has 4, asked for 8"]),
        ({}, EnvOptions(num_envs=4, rand_seed=6), ["env option rand_seed"]),
        (PPOConfig(total_steps=10**6), None, ["num_steps", "epochs", "seed"]),
    ],
)
def test_resume_refuses_what_defines_the_run(run, config, env, names):
    with pytest.raises(ValueError, match="cannot resume") as err:
        Trainer(run, config, env, resume=True, progress=False)
    for name in names:
        assert name in str(err.value)
    assert "start a new run folder" in str(err.value)


def test_resume_refuses_a_budget_below_the_trained_steps(run):
    with pytest.raises(ValueError, match="below the 64 steps"):
        Trainer(run, {"total_steps": 1}, resume=True, progress=False)
    assert main(["train", "--resume", str(run), "--steps", "1"]) == 2


def test_resume_drops_log_lines_past_the_checkpoint_and_never_repeats_steps(run):
    with open(run / "log.jsonl", "a") as f:  # what a kill after the checkpoint leaves
        f.write(json.dumps({"steps": 2 * PER_UPDATE}) + "\n" + '{"steps": 19')
    t = Trainer(run, {"total_steps": 3 * PER_UPDATE}, resume=True, progress=False)
    assert t.log_lines_dropped == 2
    assert [r["steps"] for r in read_log(run)] == [PER_UPDATE]
    t.run()
    assert [r["steps"] for r in read_log(run)] == [PER_UPDATE, 2 * PER_UPDATE, 3 * PER_UPDATE]


def test_a_run_whose_last_update_passed_its_budget_reopens_as_finished(tmp_path):
    run = Trainer(  # 40 steps asked, one whole update of 64 trained
        tmp_path / "run",
        PPOConfig(**TINY, total_steps=40),
        EnvOptions(num_envs=4, rand_seed=5),
        progress=False,
    )
    assert run.run()["steps"] == PER_UPDATE
    t = Trainer(tmp_path / "run", resume=True, progress=False)
    assert (t.steps, t.config.total_steps) == (PER_UPDATE, 40)
    assert t.run()["steps"] == PER_UPDATE  # nothing left to train
    t = Trainer(tmp_path / "run", {"total_steps": 2 * PER_UPDATE}, resume=True, progress=False)
    assert t.run()["steps"] == 2 * PER_UPDATE
    with pytest.raises(ValueError, match="below the 128 steps"):
        Trainer(tmp_path / "run", {"total_steps": 100}, resume=True, progress=False)


def test_resuming_a_finished_run_does_not_rewrite_its_checkpoint(run):
    ckpt = run / json.loads((run / "latest.json").read_text())["checkpoint"]
    before = os.stat(ckpt / "model.safetensors").st_ino
    meta = Trainer(run, resume=True, progress=False).run()
    assert meta["steps"] == PER_UPDATE
    assert os.stat(ckpt / "model.safetensors").st_ino == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".ckpt")) == []


@pytest.mark.parametrize(
    "latest, message",
    [
        ("[1, 2]", "'checkpoint' must name a ckpt-<steps> folder"),
        ('{"checkpoint": 5, "steps": 64}', "'checkpoint' must name"),
        ('{"checkpoint": "../../etc", "steps": 64}', "'checkpoint' must name"),
        ('{"checkpoint": "ckpt-000000000064", "steps": "64"}', "'steps' must be"),
        ('{"checkpoint": "ckpt-000000000999", "steps": 999}', "not in"),
        ("{not json", "not valid JSON"),
    ],
)
def test_damaged_latest_json_is_a_clear_error(run, latest, message, capsys):
    (run / "latest.json").write_text(latest)
    with pytest.raises(CheckpointError, match=message):
        Trainer(run, resume=True, progress=False)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlvision train: error: ") and "Traceback" not in err


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["training"].update(lr="fast"), "lr must be a finite number"),
        (lambda c: c["training"].update(num_steps=2.5), "num_steps must be an integer"),
        (lambda c: c["training"].update(normalize_rewards="yes"), "normalize_rewards"),
        (lambda c: c.update(training=[1]), "must be a JSON object"),
        (lambda c: c["env"].update(num_envs="4"), "num_envs must be a positive integer"),
        (lambda c: c.update(steps=-1), "steps must be a non-negative integer"),
        (lambda c: c.update(recent_successes="all"), "recent_successes"),
        (lambda c: c.pop("updates"), "missing 'updates'"),
    ],
)
def test_wrong_types_in_config_json_are_a_clear_error(run, edit, message, capsys):
    ckpt = run / json.loads((run / "latest.json").read_text())["checkpoint"]
    config = json.loads((ckpt / "config.json").read_text())
    edit(config)
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        Trainer(run, resume=True, progress=False)
    assert main(["train", "--resume", str(run)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_bad_run_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="num_minibatches 100 is more than the 64 samples"):
        Trainer(
            tmp_path / "r",
            PPOConfig(**{**TINY, "num_minibatches": 100}),
            EnvOptions(num_envs=4),
            progress=False,
        )
    with pytest.raises(ValueError, match="device must be"):
        PPOConfig(device="nonsense")
    with pytest.raises(ValueError, match="seed must be in"):
        PPOConfig(seed=-1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        PPOConfig(lr=0.0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Trainer(
                tmp_path / "c",
                PPOConfig(**TINY, device="cuda"),
                EnvOptions(num_envs=4),
                progress=False,
            )
    # nothing was left locked: the folders can be used again
    tiny_run(tmp_path / "r")


def _copy_reference(dest: Path) -> Path:
    """Copy the reference run's newest checkpoint, latest.json and log (read-only on the
    original; a live trainer may replace the checkpoint meanwhile, so retry)."""
    for _ in range(5):
        latest = json.loads((REFERENCE / "latest.json").read_text())
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        try:
            shutil.copytree(REFERENCE / latest["checkpoint"], dest / latest["checkpoint"])
        except (FileNotFoundError, shutil.Error):
            continue
        (dest / "latest.json").write_text(json.dumps(latest))
        shutil.copy(REFERENCE / "log.jsonl", dest / "log.jsonl")
        return dest
    pytest.fail("could not copy a consistent reference checkpoint")


@pytest.mark.skipif(not (REFERENCE / "latest.json").is_file(), reason="no runs/reference")
def test_the_reference_run_resumes_with_the_next_sessions_command(tmp_path, threads):
    run = _copy_reference(tmp_path / "reference")
    saved = json.loads((run / "latest.json").read_text())["steps"]
    command = ["train", "--resume", str(run), "--precision", "bf16", "--threads", "1"]
    stored = json.loads((run / f"ckpt-{saved:012d}" / "config.json").read_text())
    stored_total = stored["training"]["total_steps"]
    for extra, total in (([], stored_total), (["--steps", "50000000"], 50_000_000)):
        config, env = train_settings(build_parser().parse_args(command + extra))
        t = Trainer(run, config, env, resume=True, progress=False)
        close(t)
        assert t.config.total_steps == total and t.steps == saved
        assert (t.config.precision, t.config.num_threads, t.config.seed) == ("bf16", 1, 1)
        assert t.env.num_envs == 64 and t.config.network == "compact"
        assert max(r["steps"] for r in read_log(run)) <= saved  # no repeated steps ahead
    config, env = train_settings(build_parser().parse_args(command + ["--seed", "1"]))
    close(Trainer(run, config, env, resume=True, progress=False))  # its own seed: accepted
    config, env = train_settings(build_parser().parse_args(command + ["--num-envs", "8"]))
    with pytest.raises(ValueError, match="num_envs: the run has 64, asked for 8"):
        Trainer(run, config, env, resume=True, progress=False)


def test_temporaries_left_by_killed_checkpoint_writes_are_removed_on_start(run):
    stale = run / ".ckpt-000000000128.tmpk1ll3d"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    (run / ".latest.json.x1y2.tmp").write_text("{")
    close(Trainer(run, resume=True, progress=False))
    assert not stale.exists() and not (run / ".latest.json.x1y2.tmp").exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".lock"]
