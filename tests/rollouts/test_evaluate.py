"""Evaluation on exact levels, JSON schema, statistics."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency
from torch import nn

import rlvision_widgets.rollouts.evaluate as evaluate_module
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.agents.sampling import sample_actions
from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.rollouts.evaluate import EvaluationResult, evaluate
from rlvision_widgets.rollouts.stats import two_proportion_test, wilson_interval
from rlvision_widgets.studies.charts import plot_failures


def test_evaluate_cli_json_schema_and_counts_add_up():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlvision_widgets.cli",
            "evaluate",
            "--agent",
            "random",
            "--levels",
            "24",
            "--distribution-mode",
            "hard",
            "--seed",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"levels", "success_rate", "ci95", "failures"} <= set(data)
    assert set(data["failures"]) == {
        "saw",
        "enemy_left",
        "enemy_right",
        "lava",
        "multiple",
        "timeout",
    }
    assert data["levels"] == 24
    failures = sum(data["failures"].values())
    assert round(data["success_rate"] * 24) + failures == 24
    lo, hi = data["ci95"]
    assert 0 <= lo <= data["success_rate"] <= hi <= 1
    assert "evaluate" in out.stderr  # progress goes to stderr


def test_evaluate_is_deterministic_and_uses_the_same_levels():
    agent = load_agent("random")
    a = evaluate(agent, levels=12, start_level=50, seed=1, progress=False)
    b = evaluate(agent, levels=12, start_level=50, seed=1, progress=False)
    assert a.outcomes == b.outcomes and np.array_equal(a.lengths, b.lengths)
    assert list(a.level_seeds) == list(range(50, 62))
    c = evaluate(agent, levels=12, start_level=50, seed=2, progress=False, num_envs=5)
    assert list(c.level_seeds) == list(a.level_seeds)
    assert all(o in ("success", *FAILURE_CAUSES) for o in a.outcomes)
    assert all(1 <= n <= 1000 for n in a.lengths)


def test_invisible_saws_option_is_recorded():
    r = evaluate(load_agent("random"), levels=4, invisible_saws=True, progress=False)
    assert r.settings["invisible_saws"] is True


def test_wilson_interval_closed_form():
    for k, n in [(0, 10), (3, 10), (10, 10), (812, 1000)]:
        z = 1.959963984540054
        p = k / n
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(max(0, c - h), abs=1e-9)
        assert hi == pytest.approx(min(1, c + h), abs=1e-9)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_two_proportion_test_matches_chi_squared():
    for k1, n1, k2, n2 in [(4, 2000, 255, 2000), (37, 1000, 52, 1000), (7, 300, 7, 300)]:
        z, p = two_proportion_test(k1, n1, k2, n2)
        chi2, p_chi, _, _ = chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)
        assert z * z == pytest.approx(chi2, rel=1e-9)
        assert p == pytest.approx(p_chi, rel=1e-9)
    assert two_proportion_test(0, 10, 0, 10) == (0.0, 1.0)


def test_compare_and_plot_on_synthetic_counts(tmp_path):
    seeds = np.arange(1000)
    base = EvaluationResult(
        seeds, ["success"] * 990 + ["saw"] * 4 + ["enemy_left"] * 6, np.ones(1000, int)
    )
    edited = EvaluationResult(
        seeds, ["success"] * 860 + ["saw"] * 134 + ["enemy_left"] * 6, np.ones(1000, int)
    )
    cmp = base.compare(edited)
    assert cmp["saw"]["base"] == 4 and cmp["saw"]["edited"] == 134
    assert cmp["saw"]["ratio"] == pytest.approx(33.5)
    assert cmp["saw"]["p"] < 1e-20
    assert cmp["enemy_left"]["p"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same levels"):
        base.compare(EvaluationResult(seeds + 1, base.outcomes, base.lengths))
    plot_failures({"original": base, "saw-blind": edited}, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 5000
    base.write_csv(tmp_path / "levels.csv")
    assert (tmp_path / "levels.csv").read_text().count("\n") == 1001


def test_bad_levels():
    with pytest.raises(ValueError, match="levels"):
        evaluate(load_agent("random"), levels=0, progress=False)


def test_agent_names_go_through_the_one_resolver():
    by_name = evaluate("random", levels=6, start_level=7, seed=4, num_envs=3, progress=False)
    by_module = evaluate(
        load_agent("random"), levels=6, start_level=7, seed=4, num_envs=3, progress=False
    )
    assert by_name.outcomes == by_module.outcomes
    with pytest.raises(ValueError, match="unknown agent"):
        evaluate("no-such-agent", levels=2, progress=False)


def test_csv_is_written_atomically(tmp_path):
    r = EvaluationResult(np.arange(3), ["success", "saw", "timeout"], np.array([5, 6, 7]))
    path = tmp_path / "levels.csv"
    path.write_text("old")
    r.write_csv(path)
    assert path.read_bytes() == (
        b"level_seed,outcome,length\r\n0,success,5\r\n1,saw,6\r\n2,timeout,7\r\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["levels.csv"]
    bad = EvaluationResult(np.arange(1), ["\ud800"], np.array([1]))  # cannot be encoded
    with pytest.raises(UnicodeEncodeError):
        bad.write_csv(path)
    assert path.read_bytes().startswith(b"level_seed") and len(list(tmp_path.iterdir())) == 1


def test_result_depends_only_on_agent_levels_and_seed_not_on_num_envs():
    """Each level samples from its own stream: any batch size, or a split over workers, gives
    the same per-level outcomes (a shared stream gave 0.875 vs 0.833 on the same levels)."""
    agent = load_agent("random")
    runs = {
        n: evaluate(agent, levels=12, start_level=100, seed=2, num_envs=n, progress=False)
        for n in (1, 3, 8)
    }
    first = runs[1]
    for n, r in runs.items():
        assert r.outcomes == first.outcomes and np.array_equal(r.lengths, first.lengths), n
        assert r.settings["num_envs"] == n
    halves = [
        evaluate(agent, levels=6, start_level=s, seed=2, num_envs=4, progress=False)
        for s in (100, 106)
    ]
    assert halves[0].outcomes + halves[1].outcomes == first.outcomes
    assert len(set(first.lengths.tolist())) > 1  # the levels really differ
    other = evaluate(agent, levels=12, start_level=100, seed=3, num_envs=8, progress=False)
    assert not np.array_equal(other.lengths, first.lengths)  # the seed matters


def test_every_setting_is_recorded():
    r = evaluate(load_agent("random"), levels=2, start_level=5, seed=7, num_envs=2, progress=False)
    assert r.settings == {
        "levels": 2,
        "start_level": 5,
        "distribution_mode": "easy",
        "invisible_saws": False,
        "seed": 7,
        "sample": True,
        "action_streams": "per level: SeedSequence([seed, level])",
        "num_envs": 2,
        "device": "cpu",
        "paint_vel_info": True,
        "use_backgrounds": True,
        "restrict_themes": False,
        "use_monochrome_assets": False,
        "center_agent": True,
    }
    assert r.to_json()["settings"] == r.settings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(levels=True), "levels must be a positive integer"),
        (dict(num_envs=0), "num_envs must be >= 1"),
        (dict(seed=-5), "seed must be >= 0"),
        (dict(seed=2.7), "seed must be an integer"),
        (dict(start_level=2**31 - 1, levels=2), "past the last level seed"),
    ],
)
def test_bad_evaluation_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate("random", **{"levels": 2, **kwargs, "progress": False})


class _TiltedAgent(nn.Module):
    """A cheap agent with clearly non-uniform, observation-dependent logits (mostly RIGHT and
    RIGHT+UP, so levels end quickly), where a change in how rows draw would show."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(3, 15, generator=g)
        self.bias = torch.zeros(15)
        self.bias[[7, 8]] = 2.0

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        colour = obs.float().mean(dim=(1, 2)) / 255  # (N, 3) mean colour
        return colour @ self.weight + self.bias, torch.zeros(len(obs))


def test_evaluation_samples_once_per_step_with_the_levels_streams(monkeypatch):
    """One batched sampler call per step, one stream per live row, with exactly the outcomes
    of the earlier one-row-at-a-time loop, for any num_envs."""
    agent = _TiltedAgent()
    kw = dict(levels=7, start_level=30, seed=5, progress=False)
    batched = evaluate(agent, num_envs=3, **kw)
    calls = []

    def one_row_at_a_time(logits, generators):
        assert isinstance(generators, list) and len(generators) == len(logits) >= 1
        calls.append(len(generators))
        return np.array([sample_actions(logits[i : i + 1], g)[0] for i, g in enumerate(generators)])

    monkeypatch.setattr(evaluate_module, "sample_actions", one_row_at_a_time)
    looped = evaluate(agent, num_envs=3, **kw)
    assert looped.outcomes == batched.outcomes and np.array_equal(looped.lengths, batched.lengths)
    assert max(calls) == 3 and min(calls) < 3  # finished slots drop out of the batch
    assert len(calls) < batched.lengths.sum()  # batched: fewer calls than level-steps
    monkeypatch.undo()
    single = evaluate(agent, num_envs=1, **kw)
    assert single.outcomes == batched.outcomes and np.array_equal(single.lengths, batched.lengths)
    assert len(set(batched.lengths.tolist())) > 1
    greedy = evaluate(agent, num_envs=3, sample=False, **kw)
    assert np.array_equal(greedy.lengths, evaluate(agent, num_envs=1, sample=False, **kw).lengths)


def test_a_level_list_with_repeats_plays_each_entry_with_its_own_stream():
    """Sampling levels with replacement (the article's footnote 10): the k-th occurrence of a
    level draws from its own stream; its first occurrence is the episode an integer ``levels``
    plays, and row i depends only on (level, occurrence, seed)."""
    agent = _TiltedAgent()
    levels = [31, 30, 31, 31, 33, 30]
    r = evaluate(agent, levels=levels, seed=5, num_envs=3, progress=False)
    assert r.level_seeds.tolist() == levels and len(r.outcomes) == r.levels == 6
    assert all(o in ("success", *FAILURE_CAUSES) for o in r.outcomes)
    consecutive = evaluate(agent, levels=4, start_level=30, seed=5, num_envs=2, progress=False)
    first = {30: 1, 31: 0, 33: 4}  # the row of each level's first occurrence in `levels`
    for lvl, row in first.items():  # k = 0 is the plain evaluation's episode
        assert r.outcomes[row] == consecutive.outcomes[lvl - 30]
        assert r.lengths[row] == consecutive.lengths[lvl - 30]
    assert len({r.lengths[0], r.lengths[2], r.lengths[3]}) > 1  # repeats are new episodes
    again = evaluate(agent, levels=levels, seed=5, num_envs=5, progress=False)
    assert again.outcomes == r.outcomes and np.array_equal(again.lengths, r.lengths)
    assert again.settings == {**r.settings, "num_envs": 5}
    # the same (level, occurrence) pairs in another order: the same episodes, reordered
    other = evaluate(agent, levels=[30, 31, 33, 31, 30, 31], seed=5, num_envs=2, progress=False)
    pairs = lambda res: sorted(  # noqa: E731
        zip(res.level_seeds.tolist(), evaluate_module.occurrences(res.level_seeds).tolist(),
            res.outcomes, res.lengths.tolist())
    )  # fmt: skip
    assert pairs(other) == pairs(r)
    assert evaluate_module.occurrences(levels).tolist() == [0, 0, 1, 2, 0, 1]


def test_a_level_list_is_recorded_compactly():
    import hashlib

    r = evaluate("random", levels=[8, 3, 8], seed=1, num_envs=2, progress=False)
    s = r.settings
    assert s["levels"] == 3 and s["start_level"] is None
    assert s["level_list"] == {
        "distinct": 2,
        "min": 3,
        "max": 8,
        "sha256": hashlib.sha256(b"8,3,8").hexdigest(),
    }
    assert "SeedSequence([seed, level, k])" in s["action_streams"]
    json.dumps(r.to_json(per_level=True), allow_nan=False)
    assert [row["level_seed"] for row in r.to_json(per_level=True)["per_level"]] == [8, 3, 8]
    # a consecutive list without repeats is recorded (and played) as the integer form is
    a = evaluate("random", levels=[4, 5, 6], seed=1, num_envs=2, progress=False)
    b = evaluate("random", levels=3, start_level=4, seed=1, num_envs=2, progress=False)
    assert a.settings == b.settings and a.outcomes == b.outcomes
    assert np.array_equal(a.lengths, b.lengths)


def test_split_over_parts_is_identical_to_one_run():
    """The code path of ``engine="ray"``, run locally: parts played one after another,
    each with its own env and batch, rows put back in order."""
    agent = _TiltedAgent()
    kw = dict(seed=2, num_envs=4, progress=False)
    one = evaluate(agent, levels=11, start_level=60, **kw)
    for parts in (2, 3, 11, 40):
        split_run = evaluate(agent, levels=11, start_level=60, parts=parts, threads=1, **kw)
        assert split_run.outcomes == one.outcomes, parts
        assert np.array_equal(split_run.lengths, one.lengths)
        assert split_run.settings == one.settings
    levels = [60, 61, 60, 70, 60, 61, 75]
    listed = evaluate(agent, levels=levels, **kw)
    assert evaluate(agent, levels=levels, parts=3, **kw).outcomes == listed.outcomes
    assert len(set(one.lengths.tolist())) > 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(levels=[]), "empty list"),
        (dict(levels=[3, -1]), r"level seeds must be in 0..2\*\*31 - 1"),
        (dict(levels=[3, 2**31]), r"level seeds must be in 0..2\*\*31 - 1"),
        (dict(levels=[1.5, 2]), "flat sequence of integer level seeds"),
        (dict(levels=[[1, 2]]), "flat sequence of integer level seeds"),
        (dict(levels=[True, 2]), "flat sequence of integer level seeds"),
        (dict(levels="12"), "positive integer or a sequence of level seeds"),
        (dict(levels=2.0), "positive integer or a sequence of level seeds"),
        (dict(levels=[1, 2], start_level=5), "give the seeds themselves"),
        (dict(engine="spark"), "unknown engine 'spark': choose one of local, ray"),
        (dict(address="auto"), "use it with engine 'ray'"),
        (dict(parts=0), "parts must be >= 1"),
        (dict(threads=0), "threads must be >= 1"),
    ],
)
def test_bad_level_lists_and_engine_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate("random", **{"levels": 2, **kwargs, "progress": False})
