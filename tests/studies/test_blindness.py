"""The blindness experiments' runner, ``prepare_edit`` and ``rlvision evaluate --edit``."""

import json

import numpy as np
import pytest
import torch

from rlvision_widgets.agents.checkpoint import save_checkpoint
from rlvision_widgets.analysis.nmf import AttributionNMF
from rlvision_widgets.environment.actions import NUM_ACTIONS
from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.studies.article import table_counts
from rlvision_widgets.studies.blindness import blind_agent, prepare_edit, run_blindness_experiments
from rlvision_widgets.studies.choice import choose_all_features


def test_runner_counts_add_up_on_the_same_levels(random_net, planted_identification, tmp_path):
    rep = run_blindness_experiments(
        random_net,
        levels=3,
        start_level=7,
        seed=1,
        conditions=("original", "saw_blind", "left_enemy_blind"),
        identification=planted_identification(),
        num_envs=3,
        progress=False,
        log=None,
    )
    assert set(rep.results) == {"original", "saw_blind"}  # no left-enemy feature: skipped
    for r in rep.results.values():
        assert r.levels == 3 and list(r.level_seeds) == [7, 8, 9]
        assert r.successes + sum(r.failures.values()) == 3
        assert sum(table_counts(r).values()) == sum(r.failures.values())
    assert rep.choices["saw_blind"].feature == 1
    assert rep.settings["modes_used"] == {"saw_blind": "weight"}  # the one default
    assert rep.verdict()["left_enemy_blind"]["evaluated"] is False
    json.dumps(rep.to_json(), allow_nan=False)
    # the identification's labels survive writing and reloading the report
    from rlvision_widgets.studies.report import load_report

    rep.write(tmp_path)
    back = load_report(tmp_path).identification
    assert back.labels is not None
    assert back.labels.labels == rep.identification.labels.labels
    assert back.identified_classes() == rep.identification.identified_classes()


def test_prepare_edit_by_class_name_needs_an_identified_feature(random_net):
    """A random-weight network's features are not objects: editing "saw" is refused with the
    classes that were identified; editing a feature by number works and reports evidence."""
    with pytest.raises(
        ValueError, match="cannot edit .saw.: no (feature identified with|buzzsaw visible)"
    ):
        prepare_edit(random_net, "saw", rank=3, corpus_envs=2, corpus_steps=16)
    edited, choice, ident = prepare_edit(random_net, 2, rank=3, corpus_envs=2, corpus_steps=16)
    assert choice.feature == 2 and choice.evidence[0]["feature"] == 2
    assert choice.evidence[0]["status"] in ("identified", "duplicate", "weak", "unidentified")
    assert np.allclose(choice.direction, ident.nmf.components_[2], atol=1e-6)
    assert edited.edits[0].layer == "2b" and edited.edits[0].mode == "weight"
    obs = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    assert edited(obs)[0].shape == (2, NUM_ACTIONS)
    with pytest.raises(ValueError, match="valid classes"):
        prepare_edit(random_net, "dragon")


def test_cli_evaluate_with_edit_counts_add_up(random_net, tmp_path, capsys):
    from rlvision_widgets.cli import main

    agent_dir = save_checkpoint(tmp_path / "agent", random_net, {"steps": 0})
    rng = np.random.default_rng(0)
    nmf = AttributionNMF(4, source="activation").fit(rng.random((300, 32)).astype(np.float32))
    nmf_path = nmf.save(tmp_path / "nmf")
    chart = tmp_path / "chart.png"
    code = main(
        [
            "evaluate",
            "--agent",
            str(agent_dir),
            "--levels",
            "4",
            "--num-envs",
            "4",
            "--edit",
            "2",
            "--nmf",
            str(nmf_path),
            "--json",
            "--chart",
            str(chart),
            "--csv",
            str(tmp_path / "levels.csv"),
        ]
    )
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


def test_every_saw_feature_edit_projects_out_their_span(random_net, planted_identification):
    one = choose_all_features(planted_identification(), "saw_blind_all", "saw")
    assert one.feature is None and "only 1 feature" in one.note
    two = choose_all_features(planted_identification(second_saw=True), "saw_blind_all", "saw")
    assert sorted(two.features) == [1, 2] and len(two.all_directions) == 2
    edited = blind_agent(random_net, two.all_directions, "2b", mode="activation")
    assert len(edited.edits) == 1 and edited.edits[0].num_directions == 2
    obs = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    a = random_net.forward_to(obs, "2b")
    V = np.asarray(two.all_directions, np.float64)
    P = torch.from_numpy(np.eye(32) - V.T @ np.linalg.solve(V @ V.T, V)).float()
    expected = random_net.forward_from("2b", torch.einsum("nchw,dc->ndhw", a, P))
    torch.testing.assert_close(edited(obs), expected, rtol=1e-4, atol=1e-5)
    # the default weight edit: 3a's kernel no longer reads either direction of the pooled 2b
    w = blind_agent(random_net, two.all_directions, "2b")
    assert w.edits[0].mode == "weight"
    kernel = w.agent.get_submodule("3a").conv.weight.detach().double()
    assert torch.einsum("dcij,kc->dkij", kernel, torch.from_numpy(V)).abs().max() < 1e-4
    assert _hooks(random_net) == 0


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_prepare_edit_edits_a_copy_with_the_weight_edit(random_net, tmp_path):
    rng = np.random.default_rng(1)
    nmf = AttributionNMF(3, source="activation").fit(rng.random((100, 32)).astype(np.float32))
    before = {k: t.clone() for k, t in random_net.state_dict().items()}
    edited, choice, ident = prepare_edit(random_net, 1, nmf=nmf)
    assert ident is None and choice.feature == 1
    (e,) = edited.edits
    assert (e.layer, e.mode, e.num_directions) == ("2b", "weight", 1)
    np.testing.assert_allclose(e.direction, nmf.components_[1], rtol=1e-6)
    assert all(torch.equal(t, before[k]) for k, t in random_net.state_dict().items())
    assert _hooks(random_net) == 0


def test_runner_split_over_parts_is_identical_to_one_run(random_net, planted_identification):
    """The levels of every model split over tasks (the code path of engine="ray", run
    locally) give the report of the plain run, edited models included."""
    kw = dict(
        levels=5,
        start_level=20,
        seed=2,
        conditions=("original", "saw_blind", "invisible_saws"),
        identification=planted_identification(),
        num_envs=2,
        diagnose=False,
        progress=False,
        log=None,
    )
    one = run_blindness_experiments(random_net, **kw)
    split = run_blindness_experiments(random_net, parts=3, threads=1, **kw)
    assert set(one.results) == set(split.results) == {"original", "saw_blind", "invisible_saws"}
    for name, r in one.results.items():
        s = split.results[name]
        assert s.outcomes == r.outcomes and np.array_equal(s.lengths, r.lengths), name
        assert s.settings == r.settings
    assert split.settings == one.settings
    assert len(set(one.results["original"].lengths.tolist())) > 1  # the levels really differ


def test_runner_refuses_a_bad_engine_before_any_work(random_net):
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        run_blindness_experiments(random_net, engine="spark", log=None)
    with pytest.raises(ValueError, match="use it with engine 'ray'"):
        run_blindness_experiments(random_net, address="auto", log=None)
