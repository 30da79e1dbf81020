"""The diversity sweep (studies/sweep.py): config validation, cell names, level samples, and a
tiny sweep end to end (interrupted in its first cell, resumed, skipped when run again)."""

from __future__ import annotations

import csv
import dataclasses
import doctest
import json
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest

from rlvision_widgets.studies import sweep as sweep_module
from rlvision_widgets.studies.sweep import (
    ALL_LEVELS,
    TEST_RANGE,
    SweepConfig,
    SweepResults,
    SweepStopped,
    cell_name,
    load_sweep,
    plot_sweep,
    publish_sweep,
    run_sweep,
    sample_levels,
)
from rlvision_widgets.training import train

#: a few hundred steps per cell (2 updates of 4 envs x 32 steps), 8 levels each evaluation
TINY = SweepConfig.smoke()


# ---------------------------------------------------------------------------- the config
def test_config_validation_names_the_setting():
    cases = [
        (dict(levels=()), "levels must hold at least one value"),
        (dict(levels=(-1,)), r"levels must be integers in \[0"),
        (dict(levels=(100, 100)), "levels lists \\[100\\] more than once"),
        (dict(seeds=(0.5,)), "seeds must be integers"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(eval_levels=0), "eval_levels must be an integer >= 1"),
        (dict(interp_frames=8), "interp_frames must be an integer >= 32"),
        (dict(ppo={"total_steps": 5}), "total_steps is set by the sweep's steps"),
        (dict(ppo={"seed": 5}), "seed is set by the sweep's seeds"),
        (dict(ppo={"lr": -1.0}), "ppo: lr must be > 0"),
        (dict(ppo={"learning_rate": 1.0}), "unknown PPOConfig field 'learning_rate'"),
        (dict(env_options={"num_levels": 5}), "num_levels is set by the sweep's levels"),
        (dict(env_options={"distribution_mode": "x"}), "env_options: invalid CoinRun option"),
        (dict(levels=(2_000_000,)), "test_start_level 1000000 lies inside the training levels"),
        (dict(env_options={"num_envs": 1}, ppo={"num_steps": 4}), "num_minibatches 8 is more"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            SweepConfig(**kwargs)
    with pytest.raises(ValueError, match=r"unknown sweep setting\(s\) \['level'\]"):
        SweepConfig.from_json({"level": [100]})


def test_config_json_round_trip(tmp_path):
    cfg = SweepConfig(levels=[100, 0], seeds=[1, 2], ppo={"lr": 1e-4}, eval_levels=50)
    assert cfg.levels == (100, 0) and cfg.seeds == (1, 2)  # lists become tuples
    assert SweepConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg.to_json()))
    assert SweepConfig.from_json(path) == cfg
    with pytest.raises(ValueError, match="cannot read a sweep config"):
        SweepConfig.from_json(tmp_path / "missing.json")


def test_cell_names_are_stable_readable_and_differ_by_training_setting():
    base = SweepConfig(env_options={"distribution_mode": "easy", "num_envs": 64})
    same = SweepConfig(env_options={"num_envs": 64, "distribution_mode": "easy"})
    name = cell_name(base, 100, 0)
    assert re.fullmatch(r"levels-100_seed-0_5M-[0-9a-f]{8}", name)
    assert cell_name(same, 100, 0) == name == cell_name(SweepConfig(), 100, 0)
    # an override equal to the default defines the same agent: the same name
    assert cell_name(SweepConfig(ppo={"lr": 5e-4}), 100, 0) == name
    assert cell_name(SweepConfig(), 0, 0).startswith("levels-unbounded_seed-0_5M-")
    assert cell_name(SweepConfig(steps=2_500_000), 100, 0).startswith("levels-100_seed-0_2.5M-")
    differ = [
        cell_name(SweepConfig(), 1000, 0),
        cell_name(SweepConfig(seeds=(1,)), 100, 1),
        cell_name(SweepConfig(steps=5_000_001), 100, 0),
        cell_name(SweepConfig(ppo={"lr": 1e-4}), 100, 0),
        cell_name(SweepConfig(ppo={"network": "article"}), 100, 0),
        cell_name(SweepConfig(env_options={"distribution_mode": "hard"}), 100, 0),
        cell_name(SweepConfig(env_options={"num_envs": 32}), 100, 0),
    ]
    hashes = [n.rsplit("-", 1)[1] for n in differ]
    assert name.rsplit("-", 1)[1] not in hashes and len(set(hashes)) == len(hashes)
    # evaluation settings and the machine's (checkpoint interval) do not change the agent
    for cfg in (
        SweepConfig(eval_levels=10_000, eval_seed=3, interp_rank=16),
        SweepConfig(ppo={"checkpoint_every_s": 60.0}),
    ):
        assert cell_name(cfg, 100, 0) == name
    assert [c.name for c in SweepConfig(levels=(100, 0), seeds=(0, 1)).cells()] == [
        name,
        cell_name(SweepConfig(seeds=(1,)), 100, 1),
        cell_name(SweepConfig(), 0, 0),
        cell_name(SweepConfig(seeds=(1,)), 0, 1),
    ]


def test_extra_cells_join_the_grid_without_renaming_it():
    grid = SweepConfig(levels=(100, 1000, 0))
    cfg = grid.replace(extra_cells=[[1000, 1], (10_000, 2), (100, 3)])
    assert cfg.extra_cells == ((1000, 1), (10_000, 2), (100, 3))
    cells = [(c.levels, c.seed) for c in cfg.cells()]
    assert cells == [(100, 0), (100, 3), (1000, 0), (1000, 1), (0, 0), (10_000, 2)]
    # the grid's cells keep their names (a done cell is found again), the extra ones are new
    names = {(c.levels, c.seed): c.name for c in cfg.cells()}
    assert all(names[c.levels, c.seed] == c.name for c in grid.cells())
    assert names[1000, 1] == cell_name(SweepConfig(seeds=(1,)), 1000, 1)
    assert len(set(names.values())) == len(names)
    # JSON: pairs come back as tuples; an older sweep.json without the field still loads
    assert SweepConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    old = {k: v for k, v in grid.to_json().items() if k != "extra_cells"}
    assert SweepConfig.from_json(old) == grid
    # run_cell takes an extra cell and still refuses a pair outside the sweep
    with pytest.raises(ValueError, match="levels 10, seed 1\\) is not a cell"):
        sweep_module.run_cell(cfg.to_json(), 10, 1, "unused")
    # the unseen levels must start above the largest extra cell too
    with pytest.raises(ValueError, match="test_start_level 1000000 lies inside"):
        SweepConfig(extra_cells=[(2_000_000, 0)])
    for bad, message in [
        ((1000, 1), "list of \\[levels, seed\\] pairs"),
        ([(1000,)], "list of \\[levels, seed\\] pairs"),
        ([(1000, -1)], "integers >= 0"),
        ([("1000", 1)], "integers >= 0"),
        ([(1000, 0)], "levels 1000, seed 0 is already a cell"),
        ([(5, 1), (5, 1)], "levels 5, seed 1 is already a cell"),
    ]:
        with pytest.raises(ValueError, match=message):
            grid.replace(extra_cells=bad)


def test_levels_are_sampled_with_replacement_reproducibly_within_range():
    cfg = SweepConfig(levels=(5, 0), seeds=(0, 1), eval_levels=200)
    train_a, test_a = sample_levels(cfg, 5, 0)
    train_b, test_b = sample_levels(cfg, 5, 0)
    assert np.array_equal(train_a, train_b) and np.array_equal(test_a, test_b)
    assert len(train_a) == len(test_a) == 200
    assert set(train_a.tolist()) == set(range(5))  # 200 draws of 5 levels: repeats
    assert test_a.min() >= 1_000_000 and test_a.max() < 1_000_000 + TEST_RANGE
    assert len(set(test_a.tolist())) > 150  # 200 draws from 2**20: nearly all distinct
    other_seed, _ = sample_levels(cfg, 5, 1)
    assert not np.array_equal(train_a, other_seed)
    other_eval, _ = sample_levels(cfg.replace(eval_seed=1), 5, 0)
    assert not np.array_equal(train_a, other_eval)
    unb_train, unb_test = sample_levels(cfg, 0, 0)
    assert unb_train.min() >= 0 and unb_train.max() < ALL_LEVELS
    assert unb_train.max() > 1_000_000 + TEST_RANGE  # all level seeds, not the test range
    assert not np.array_equal(unb_test, test_a)


# ------------------------------------------------------------------------- a tiny sweep
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """TINY run to the end after its first cell was interrupted at 128 of 256 steps."""
    out = tmp_path_factory.mktemp("sweep")
    first = TINY.cells()[0]
    ppo, env = TINY.training(first.levels, first.seed, threads=1)
    train(out / first.name, dataclasses.replace(ppo, total_steps=128), env, progress=False)
    partial_log = (out / first.name / "log.jsonl").read_text().splitlines()
    t0 = time.perf_counter()
    results = run_sweep(TINY, out, progress=False)
    return SimpleNamespace(
        out=out, results=results, wall=time.perf_counter() - t0, partial_log=partial_log
    )


def test_tiny_sweep_writes_results(tiny):
    res, out = tiny.results, tiny.out
    assert [c["cell"] for c in res.cells] == [c.name for c in TINY.cells()]
    for c in res.cells:
        folder = out / c["cell"]
        doc = json.loads((folder / "result.json").read_text())
        assert doc == c
        assert c["steps"] >= TINY.steps and c["checkpoint"] == f"ckpt-{c['steps']:012d}"
        # only the newest checkpoint is kept, and only small JSON / safetensors files
        assert sorted(p.name for p in folder.glob("ckpt-*")) == [c["checkpoint"]]
        files = sorted(p.name for p in (folder / c["checkpoint"]).iterdir())
        assert files == ["config.json", "model.safetensors", "optimizer.safetensors"]
        assert 0 < c["timing"]["checkpoint_bytes"] < 8_000_000
        for which in ("train", "test"):
            ev = c[which]
            assert ev["levels"] == TINY.eval_levels and 0 <= ev["success_rate"] <= 1
            lo, hi = ev["ci95"]
            assert lo <= ev["success_rate"] <= hi
            assert sum(ev["failures"].values()) == round((1 - ev["success_rate"]) * 8)
            ll = ev["settings"]["level_list"]
            assert ev["level_range"][0] <= ll["min"] <= ll["max"] < ev["level_range"][1]
        assert c["train"]["level_range"] == ([0, 2] if c["levels"] == 2 else [0, ALL_LEVELS])
        assert c["test"]["level_range"] == [1_000_000, 1_000_000 + TEST_RANGE]
        it = c["interpretability"]
        assert it["n_features"] == 4 and it["n_frames"] == 64
        for k in ("score", "identified", "consistency", "object_focus", "background"):
            assert 0 <= it[k] <= 1
        assert set(c["timing"]) >= {"train_s", "eval_train_s", "eval_test_s", "total_s"}
    # results.json, read back: the same cells; results.csv: one row per cell
    again = load_sweep(out)
    assert again.config == TINY and again.cells == res.cells
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["cell"] for r in rows] == [c["cell"] for c in res.cells]
    assert float(rows[0]["test_success"]) == res.cells[0]["test"]["success_rate"]
    assert rows[1]["levels_label"] == "unbounded" and "train_s" not in rows[0]
    table = res.table()
    assert table.count("\n") == 3 and "unbounded" in table


def test_interrupted_cell_resumed_its_training(tiny):
    folder = tiny.out / TINY.cells()[0].name
    log = (folder / "log.jsonl").read_text().splitlines()
    assert len(tiny.partial_log) == 1 and json.loads(tiny.partial_log[0])["steps"] == 128
    assert log[0] == tiny.partial_log[0]  # the first update was kept, not trained again
    assert [json.loads(line)["steps"] for line in log] == [128, 256]
    assert not (folder / "ckpt-000000000128").exists()  # the older checkpoint was removed


def test_a_stopped_cell_is_not_evaluated_or_recorded(tmp_path, monkeypatch):
    import rlvision_widgets.training.ppo as ppo

    real = ppo.train

    def stopped_early(run_dir, config, env, **kw):  # what SIGTERM mid-run leaves
        return real(run_dir, dataclasses.replace(config, total_steps=128), env, **kw)

    monkeypatch.setattr(ppo, "train", stopped_early)
    first = TINY.cells()[0]
    with pytest.raises(SweepStopped, match=f"{first.name} stopped at 128 of 256 steps"):
        run_sweep(TINY, tmp_path, progress=False)
    assert not (tmp_path / first.name / "result.json").exists()
    assert (tmp_path / first.name / "ckpt-000000000128").is_dir()  # kept for resuming


def test_second_run_skips_done_cells(tiny):
    def stamps() -> dict[str, int]:
        return {
            str(p.relative_to(tiny.out)): p.stat().st_mtime_ns
            for c in TINY.cells()
            for p in (tiny.out / c.name).rglob("*")
            if p.is_file()
        }

    before = stamps()
    t0 = time.perf_counter()
    again = run_sweep(TINY, tiny.out, progress=False)
    assert time.perf_counter() - t0 < 5  # nothing trained or evaluated
    assert stamps() == before
    assert again.cells == tiny.results.cells


def test_changed_evaluation_settings_re_evaluate_without_training(tiny, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(tiny.out, out)
    cfg = TINY.replace(levels=(2,), eval_levels=4)
    name = cfg.cells()[0].name
    assert name == TINY.cells()[0].name
    log = (out / name / "log.jsonl").read_text()
    res = run_sweep(cfg, out, progress=False)
    assert (out / name / "log.jsonl").read_text() == log
    assert res.cells[0]["train"]["levels"] == 4 and res.cells[0]["timing"]["train_s"] < 5


def test_plots_write_pngs(tiny, tmp_path):
    figs = plot_sweep(tiny.results, tmp_path / "figs")
    assert set(figs) == {"success", "interpretability"}
    for name in figs:
        data = (tmp_path / "figs" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    # several seeds per level count: bands over seeds; the unbounded tick is labelled
    cells = []
    for c in tiny.results.cells:
        for seed, shift in ((0, 0.0), (1, 0.25)):
            d = json.loads(json.dumps(c))
            d["seed"] = seed
            t = d["test"]
            t["success_rate"] = min(1.0, t["success_rate"] + shift)
            t["ci95"] = [
                min(t["success_rate"], t["ci95"][0] + shift),
                min(1.0, t["ci95"][1] + shift),
            ]
            cells.append(d)
    two = SweepResults(TINY.replace(seeds=(0, 1)), cells)
    figs = plot_sweep(two, None, article=False)
    labels = [t.get_text() for t in figs["success"].axes[0].get_xticklabels()]
    assert labels[-1] == "unbounded" and "1" in labels
    with pytest.raises(ValueError, match="no cells to plot"):
        plot_sweep(SweepResults(TINY, []))


def test_publish_copies_results_figures_and_loadable_agents(tiny, tmp_path):
    import shutil

    import torch

    from rlvision_widgets.agents.registry import load_agent

    dest = tmp_path / "docs" / "diversity"
    pub = publish_sweep(tiny.out, dest)
    assert json.loads((dest / "results.json").read_text()) == tiny.results.to_json()
    assert (dest / "results.csv").read_text() == (tiny.out / "results.csv").read_text()
    for name in ("success", "interpretability"):
        assert pub["figures"][name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    obs = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), np.uint8))
    assert sorted(pub["agents"]) == sorted(c["cell"] for c in tiny.results.cells)
    for c in tiny.results.cells:
        folder = dest / "agents" / c["cell"]
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.json",
            "learning_curve.png",
            "model.safetensors",
            "result.json",
        ]
        assert json.loads((folder / "result.json").read_text()) == c
        # the published weights are the cell's trained agent
        with torch.no_grad():
            a, va = load_agent(folder)(obs)
            b, vb = load_agent(tiny.out / c["cell"])(obs)
        assert torch.equal(a, b) and torch.equal(va, vb)
    # a cell whose checkpoint is gone is named, with how to get it back
    broken = tmp_path / "broken"
    shutil.copytree(tiny.out, broken)
    cell = tiny.results.cells[0]
    (broken / cell["cell"] / cell["checkpoint"] / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks model.safetensors.*rlvision sweep"):
        publish_sweep(broken, tmp_path / "other")


def test_load_sweep_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        load_sweep(tmp_path)
    (tmp_path / "results.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a sweep results document"):
        load_sweep(tmp_path)


def test_bad_engine_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        run_sweep(TINY, tmp_path / "s", engine="spark")
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        run_sweep(TINY, tmp_path / "s", threads=0)
    assert not (tmp_path / "s").exists()


def test_docstrings_run():
    assert doctest.testmod(sweep_module, optionflags=doctest.ELLIPSIS).failed == 0


def test_an_extra_cell_trains_and_records_like_a_grid_cell(tmp_path):
    cfg = TINY.replace(extra_cells=[(2, 1)])
    out = sweep_module.run_cell(cfg.to_json(), 2, 1, str(tmp_path), threads=1, progress=False)
    assert (out["levels"], out["seed"], out["cell"]) == (2, 1, cfg.cells()[1].name)
    assert out["steps"] >= cfg.steps and (tmp_path / out["cell"] / "result.json").is_file()
