"""Blindness experiments (stats, report, runner, `rlvision evaluate --edit`), failure listing and
the hallucination search."""
import json
import math

import numpy as np
import pytest
import torch

from rlvision_widgets.agents import build_network
from rlvision_widgets.agents.checkpoint import save_checkpoint
from rlvision_widgets.analysis.evaluation import EvaluationResult
from rlvision_widgets.analysis.experiments import (ARTICLE_TABLE, BlindnessReport, EditChoice,
                                                   choose_control, choose_feature,
                                                   compare_results, load_report, prepare_edit,
                                                   rate_ratio_ci, run_blindness_experiments,
                                                   table_counts)
from rlvision_widgets.analysis.failures import (failure_bookmarks, hallucination_search,
                                                list_failures)
from rlvision_widgets.analysis.features import (OBJECT_CLASSES, FeatureIdentification,
                                                score_features)
from rlvision_widgets.analysis.nmf import AttributionNMF
from rlvision_widgets.analysis.stats import two_proportion_test
from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.trajectories import collect_trajectories


def _result(counts: dict, n: int, seed0: int = 0) -> EvaluationResult:
    outcomes = [c for c, k in counts.items() for _ in range(k)]
    outcomes += ["success"] * (n - len(outcomes))
    return EvaluationResult(np.arange(seed0, seed0 + n), outcomes, np.ones(n, np.int64))


# ----------------------------------------------------------------------------- statistics
def test_compare_results_on_synthetic_counts():
    n = 2000
    base = _result({"saw": 500, "enemy_left": 20, "enemy_right": 30, "lava": 5, "timeout": 10}, n)
    edited = _result({"saw": 800, "enemy_left": 22, "enemy_right": 28, "lava": 4, "timeout": 12}, n)
    comp = compare_results(base, edited)
    for c in (*FAILURE_CAUSES, "other", "failed", "success"):
        d = comp[c]
        z, p = two_proportion_test(d["base"], n, d["edited"], n)
        assert d["z"] == pytest.approx(z) and d["p"] == pytest.approx(p)
    assert comp["other"]["base"] == 15 and comp["other"]["edited"] == 16
    assert comp["failed"]["base"] + comp["success"]["base"] == n
    assert comp["saw"]["ratio"] == pytest.approx(1.6) and comp["saw"]["p"] < 1e-20
    assert comp["enemy_left"]["p"] > 0.5
    # Holm-adjusted p-values are >= raw and monotone in the raw order
    raw = sorted((comp[c]["p"], comp[c]["p_holm"]) for c in FAILURE_CAUSES)
    assert all(h >= p for p, h in raw) and all(a[1] <= b[1] for a, b in zip(raw, raw[1:]))
    # paired counts: the outcome lists line up the same levels, so only moved levels count
    assert comp["saw"]["only_edited"] - comp["saw"]["only_base"] == 300
    with pytest.raises(ValueError, match="same levels"):
        compare_results(base, _result({}, n, seed0=1))
    assert table_counts(base) == {"saw": 500, "enemy_left": 20, "enemy_right": 30, "other": 15}


def test_rate_ratio_ci_closed_form():
    r, lo, hi = rate_ratio_ci(40, 1000, 100, 1000)
    se = math.sqrt(1 / 40 - 1 / 1000 + 1 / 100 - 1 / 1000)
    assert r == pytest.approx(2.5)
    assert lo == pytest.approx(2.5 * math.exp(-1.959964 * se), rel=1e-5)
    assert hi == pytest.approx(2.5 * math.exp(1.959964 * se), rel=1e-5)
    r0, lo0, hi0 = rate_ratio_ci(0, 100, 3, 100)        # zero count: 0.5 added for the CI
    assert r0 == math.inf and 0 < lo0 < 7 < hi0
    with pytest.raises(ValueError):
        rate_ratio_ci(5, 0, 1, 10)


def _synthetic_report(n=2000) -> BlindnessReport:
    res = {"original": _result({"saw": 500, "enemy_left": 20, "enemy_right": 20, "lava": 10}, n),
           "saw_blind": _result({"saw": 900, "enemy_left": 22, "enemy_right": 19, "lava": 9}, n),
           "invisible_saws": _result({"saw": 1400, "enemy_left": 10, "enemy_right": 10}, n)}
    choices = {"saw_blind": EditChoice("saw_blind", "saw", 3, 0.3, "saw", True, [1.0] * 4, "x"),
               "left_enemy_blind": EditChoice("left_enemy_blind", "enemy_left", None, 0.01,
                                              "saw", False, [], "no enemy feature")}
    return BlindnessReport(res, choices, {"agent_steps": 700_000, "levels": n})


def test_report_table_verdict_and_files(tmp_path):
    rep = _synthetic_report()
    md = rep.markdown_table()
    assert "| Buzzsaw blindness | 2,000 | 45.00% (12.76%)" in md
    assert "| Enemy moving left blindness | – | not run" in md
    assert "25.00% (0.37%)" in md
    v = rep.verdict()["saw_blind"]
    assert v["ratio"] == pytest.approx(1.8) and v["ceiling_ratio"] == pytest.approx(4.0)
    assert not v["5x_possible"] and not v["reaches_5x"] and not v["target_met"]
    assert v["other_causes_changed_p05"] == []
    assert v["blindness"] == pytest.approx((0.45 - 0.25) / (0.70 - 0.25))
    lo, hi = v["blindness_ci95"]
    assert lo < v["blindness"] < hi
    assert rep.verdict()["left_enemy_blind"] == {"evaluated": False, "note": "no enemy feature"}
    paths = rep.write(tmp_path)
    data = json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["article_table"] == ARTICLE_TABLE
    assert data["results"]["saw_blind"]["levels"] == 2000
    assert paths["chart"].stat().st_size > 10_000
    rows = paths["table_csv"].read_text().splitlines()
    assert rows[0].startswith("condition,levels,pct_saw")
    assert rows[1].startswith("original,2000,25.0000")
    assert len(paths["levels_csv"].read_text().splitlines()) == 2001
    again = load_report(tmp_path)                    # redraw without re-running
    assert again.markdown_table() == md and again.verdict() == rep.verdict()


def _planted_identification(channels=32):
    """A FeatureIdentification whose feature 1 is (by construction) the saw feature."""
    rng = np.random.default_rng(0)
    nmf = AttributionNMF(3, source="activation").fit(rng.random((200, channels)).astype(np.float32))
    maps = np.zeros((10, 4, 4, len(OBJECT_CLASSES)), np.float32)
    maps[:, 1, 1, OBJECT_CLASSES.index("saw")] = 1
    maps[:, 3, :, OBJECT_CLASSES.index("wall")] = 1
    feats = np.zeros((10, 4, 4, 3), np.float32)
    feats[:, 1, 1, 1] = -2
    feats[:, 3, :, 0] = 1
    feats[:, 0, 0, 2] = 1
    scores = score_features(feats, maps)
    return FeatureIdentification(nmf, scores, "2b", "value", np.zeros((10, 2), np.int64),
                                 {"rank": 3, "frames": 10})


def test_choose_feature_and_control():
    ident = _planted_identification()
    saw = choose_feature(ident, "buzzsaw", "saw_blind")
    assert saw.feature == 1 and saw.identified and saw.score == pytest.approx(1.0)
    assert np.allclose(saw.direction, ident.nmf.components_[1])
    left = choose_feature(ident, "enemy_left")
    assert left.feature is None and not left.identified and "no enemy moving left" in left.note
    ctl = choose_control(ident, reference=1, exclude=[1])
    assert ctl.feature == 0 and ctl.cls == "wall"
    with pytest.raises(ValueError, match="valid classes"):
        choose_feature(ident, "spikes")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small-batch evaluation with more torch threads than free cores is 10-100x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def random_net():
    """A random-weight compact network whose policy mostly jumps right, so that episodes end
    within ~150 steps (a uniform policy runs into the 1000-step timeout)."""
    torch.manual_seed(0)
    net = build_network("compact").eval()
    with torch.no_grad():
        net.policy.weight.mul_(0.1)
        net.policy.bias.zero_()
        net.policy.bias[8] = 4.0                     # RIGHT+UP
    return net


def test_runner_counts_add_up_on_the_same_levels(random_net):
    rep = run_blindness_experiments(random_net, levels=3, start_level=7, seed=1,
                                    conditions=("original", "saw_blind", "left_enemy_blind"),
                                    identification=_planted_identification(), num_envs=3,
                                    progress=False, log=None)
    assert set(rep.results) == {"original", "saw_blind"}      # no left-enemy feature: skipped
    for r in rep.results.values():
        assert r.levels == 3 and list(r.level_seeds) == [7, 8, 9]
        assert r.successes + sum(r.failures.values()) == 3
        assert sum(table_counts(r).values()) == sum(r.failures.values())
    assert rep.choices["saw_blind"].feature == 1
    assert rep.verdict()["left_enemy_blind"]["evaluated"] is False
    json.dumps(rep.to_json(), allow_nan=False)


def test_prepare_edit_by_class_name_on_a_small_corpus(random_net):
    edited, choice, ident = prepare_edit(random_net, "wall", rank=3, corpus_envs=2,
                                         corpus_steps=16)
    assert choice.cls == "wall" and choice.feature == ident.scores.feature_for("wall")[0]
    assert edited.edits[0].layer == "2b" and edited.edits[0].mode == "weight"
    obs = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    assert edited(obs)[0].shape == (2, 15)
    with pytest.raises(ValueError, match="valid classes"):
        prepare_edit(random_net, "dragon")


def test_cli_evaluate_with_edit_counts_add_up(random_net, tmp_path, capsys):
    from rlvision_widgets.cli import main
    agent_dir = save_checkpoint(tmp_path / "agent", random_net, {"steps": 0})
    rng = np.random.default_rng(0)
    nmf = AttributionNMF(4, source="activation").fit(rng.random((300, 32)).astype(np.float32))
    nmf_path = nmf.save(tmp_path / "nmf")
    chart = tmp_path / "chart.png"
    code = main(["evaluate", "--agent", str(agent_dir), "--levels", "4", "--num-envs", "4",
                 "--edit", "2", "--nmf", str(nmf_path), "--json", "--chart", str(chart),
                 "--csv", str(tmp_path / "levels.csv")])
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out.out)
    for res in (data, data["base"]):
        assert res["levels"] == 4
        assert round(res["success_rate"] * 4) + sum(res["failures"].values()) == 4
    assert data["edit"]["feature"] == 2 and data["edit"]["layer"] == "2b"
    assert np.allclose(data["edit"]["direction"], nmf.components_[2], atol=1e-6)
    comp = data["comparison"]
    assert set(FAILURE_CAUSES) | {"other", "failed", "success"} <= set(comp)
    assert comp["failed"]["edited"] == sum(data["failures"].values())
    assert all(0 <= comp[c]["p"] <= 1 for c in comp)
    assert chart.stat().st_size > 5_000
    assert len((tmp_path / "levels.csv").read_text().splitlines()) == 5


def test_cli_edit_unknown_class_lists_the_valid_ones(random_net, tmp_path, capsys):
    from rlvision_widgets.cli import main
    agent_dir = save_checkpoint(tmp_path / "agent", random_net, {"steps": 0})
    assert main(["evaluate", "--agent", str(agent_dir), "--levels", "2", "--edit", "dragon"]) == 2
    err = capsys.readouterr().err
    assert "unknown object class 'dragon'" in err and "valid classes: agent, saw" in err


# -------------------------------------------------------------------- failures, bookmarks
def test_failure_listing_on_a_real_rollout():
    traj = collect_trajectories("random", num_envs=8, num_steps=300, seed=1, progress=False)
    fails = list_failures(traj, frames_before=6, visibility=True)
    table = traj.failed_episodes()
    assert len(fails) == len(table) >= 1
    for f, row in zip(fails, table):
        assert (f.env, f.start, f.stop, f.cause) == (int(row["env"]), int(row["start"]),
                                                     int(row["stop"]), str(row["cause"]))
        assert f.cause in FAILURE_CAUSES
        assert f.steps[-1] == f.stop - 1 and len(f.steps) == min(7, f.stop - f.start)
        assert len(f.values) == len(f.steps) == len(f.visible)
        if f.cause == "saw":                    # the saw that killed the agent is in view
            assert f.visible[-1]["saw"] >= 1
        assert traj.episodes[f.episode]["start"] == f.start
    bms = failure_bookmarks(traj, frames_before=6)
    assert [b["kind"] for b in bms] == ["failure"] * len(fails)
    assert bms[0]["frame"] == fails[0].steps[0] and bms[0]["trajectory"] == fails[0].env
    assert bms[0]["cause"] == fails[0].cause and bms[0]["stop"] == fails[0].stop
    assert list_failures(traj, cause="lava") == [f for f in fails if f.cause == "lava"]
    traj.close()


def test_hallucination_ranking_on_a_synthetic_value_series():
    T = 200
    rng = np.random.default_rng(0)
    v = np.cumsum(rng.normal(0, 0.002, (2, T)), axis=1) + 0.9
    v[0, 40] += 0.03          # coin hallucination: up for one step
    v[1, 120] -= 0.08         # buzzsaw hallucination: down for one step
    v[0, 150] += 0.015        # a smaller spike
    v[1, 60:] += 0.2          # a lasting jump is not a spike
    firsts = np.zeros((2, T), bool)
    firsts[0, 100] = True
    v[0, 99] += 0.5           # last step of an episode: no next frame in the same episode
    spikes = hallucination_search(values=v, firsts=firsts, kinds=("spike",))
    assert [(s["env"], s["step"], s["direction"], s["rank"]) for s in spikes[:3]] == [
        (1, 120, -1, 1), (0, 40, 1, 2), (0, 150, 1, 3)]
    assert all(s["kind"] == "spike" and s["strength"] >= 3 for s in spikes)
    assert not any(s["step"] in (59, 60, 99, 100) for s in spikes)
    assert spikes[0]["values"][1] == pytest.approx(v[1, 120])
    assert spikes[0]["score"] == pytest.approx(-0.08, abs=0.01)

    adv = rng.normal(0, 0.01, (2, T))
    adv[0, 10] = 2.0
    adv[1, 30] = -3.0
    adv[0, 99] = -5.0         # terminal step of the first episode (a death)
    adv[0, 80] = -1.0         # ... whose earlier, non-terminal dip is still found
    ext = hallucination_search(values=v, advantages=adv, firsts=firsts, kinds=("high", "low"))
    top3 = [(b["kind"], b["env"], b["step"]) for b in ext[:3]]
    assert top3 == [("low", 1, 30), ("high", 0, 10), ("low", 0, 80)]
    assert not any(b["terminal"] for b in ext)
    with_terminal = hallucination_search(values=v, advantages=adv, firsts=firsts,
                                         kinds=("low",), exclude_terminal=False)
    assert (with_terminal[0]["env"], with_terminal[0]["step"]) == (0, 99)
    assert with_terminal[0]["terminal"]

    hits = hallucination_search(values=v, advantages=adv, firsts=firsts, top=5)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    strengths = [h["strength"] for h in hits]
    assert strengths == sorted(strengths, reverse=True)
    assert {"spike", "low", "high"} <= {h["kind"] for h in hits}
    assert all({"env", "step", "trajectory", "frame", "kind", "score", "label", "detail"} <= set(h)
               for h in hits)
    with pytest.raises(ValueError, match="valid kinds"):
        hallucination_search(values=v, kinds=("jump",))


def test_removal_effects_compare_hiding_with_editing(random_net):
    from rlvision_widgets.analysis.experiments import blind_agent, removal_effects
    traj = collect_trajectories("random", num_envs=2, num_steps=24, seed=0, progress=False)
    same = removal_effects(random_net, random_net, traj, "wall", max_frames=12)
    assert same["frames"] == 12 and same["value_edit"] == 0 and same["policy_kl_edit"] == 0
    assert same["value_blindness"] == 0 and same["value_hidden"] != 0
    edited = blind_agent(random_net, np.ones(32), "2b")
    eff = removal_effects(random_net, edited, traj, "wall", max_frames=12)
    assert eff["value_edit"] != 0 and eff["policy_kl_edit"] > 0
    assert eff["value_blindness"] == pytest.approx(eff["value_edit"] / eff["value_hidden"])
    traj.close()


def test_every_saw_feature_edit_projects_out_each_direction(random_net):
    from rlvision_widgets.agents.editing import projection
    from rlvision_widgets.analysis.experiments import _all_features_choice, blind_agent
    ident = _planted_identification()
    one = _all_features_choice(ident, "saw_blind_all", "saw", 0.05)
    assert one.feature is None and "only 1 feature" in one.note
    ident.scores.correlation[2, OBJECT_CLASSES.index("saw")] = 2.0   # a second saw feature
    two = _all_features_choice(ident, "saw_blind_all", "saw", 0.05)
    assert two.features == [1, 2] and len(two.all_directions) == 2
    edited = blind_agent(random_net, two.all_directions, "2b", mode="activation")
    assert len(edited.edits) == 2
    obs = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    a = random_net.forward_to(obs, "2b")
    P = projection(two.all_directions[1]) @ projection(two.all_directions[0])
    expected = random_net.forward_from("2b", torch.einsum("nchw,dc->ndhw", a, P))
    torch.testing.assert_close(edited(obs), expected, rtol=1e-4, atol=1e-5)
