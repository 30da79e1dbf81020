"""Original vs counterfactual frame (issue 17, requirement 2) on the shipped agent.

The comparisons that load edited states into the engine run in one child process, which saves
its results to an ``.npz``; the tests recompute what they can independently in-process (the
agent's outputs on the saved observations, KL with ``torch.distributions``, integrated
gradients, the NMF reduction) and check the rollouts' causes against the engine's episode
replay (:func:`~rlvision_widgets.environment.causes.episode_cause`, run in the child).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from children import result_of, run_child

from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.analysis.counterfactual import Rollout, compare, policy_kl, rollout
from rlvision_widgets.analysis.integrated_gradients import integrated_gradients
from rlvision_widgets.environment import CoinRunEnv
from rlvision_widgets.environment.causes import FAILURE_CAUSES
from rlvision_widgets.environment.render import object_boxes

CHILD = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.analysis.counterfactual import compare
from rlvision_widgets.analysis.integrated_gradients import integrated_gradients
from rlvision_widgets.analysis.settings import make_nmf
from rlvision_widgets.environment import CoinRunEnv, parse_state
from rlvision_widgets.environment.causes import episode_cause
from rlvision_widgets.environment.render import object_boxes
from rlvision_widgets.environment.counterfactual import Counterfactual, add_object, hide_object

torch.set_num_threads(1)
out_path = sys.argv[1]
agent = load_agent()
env = CoinRunEnv(num_envs=8, rand_seed=3, distribution_mode="hard")
frames, saw_state = [], None
for t in range(300):
    states = env.get_state()
    if t % 10 == 5:
        frames += states[:2]
    for s in states:
        if saw_state is None and len(object_boxes(s, 64).boxes["saw"]) and parse_state(s).cur_time > 3:
            saw_state = s
    if saw_state is not None and len(frames) >= 8:
        break
    env.step(np.full(8, 8))
env.close()
saw = int(object_boxes(saw_state, 64).ids["saw"][0])
hidden = hide_object(saw_state, saw)

# NMF directions at 2b from a few real frames
from rlvision_widgets.environment.coinrun import ScratchEnv
sc = ScratchEnv()
obs = []
for s in frames:
    sc.set_state(s)
    obs.append(sc.observation())
attr = integrated_gradients(agent, np.stack(obs), "2b").attributions
nmf = make_nmf(4, n_threads=1).fit(attr)

res = {}
same = compare(agent, saw_state, saw_state, nmf=nmf, rollout_steps=40, seed=3)
hid = compare(agent, Counterfactual(saw_state).hide(saw), nmf=nmf)
hid_arr = compare(agent, saw_state, hidden, nmf=nmf.components_)
hid_logit = compare(agent, saw_state, hidden, output="logit:RIGHT", steps=5)
s0 = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
a0 = parse_state(s0).agent
with_saw = add_object(s0, "saw", a0.x, a0.y, allow_overlap=True)  # on the agent: any policy dies
roll = compare(agent, s0, with_saw, rollout_steps=60, seed=0)
arrays = {}
for name, c in (("same", same), ("hid", hid), ("hid_arr", hid_arr), ("hid_logit", hid_logit), ("roll", roll)):
    for k in ("observations", "values", "logits", "attributions", "outputs"):
        arrays[f"{name}_{k}"] = np.asarray(getattr(c, k))
    if c.features is not None:
        arrays[f"{name}_features"] = c.features
        arrays[f"{name}_residual"] = c.residual
    res[name] = c.to_json()
    res[name]["kl"] = c.kl
    if c.rollouts:
        res[name]["causes"] = [episode_cause(s, r.actions) for s, r in zip(c.states, c.rollouts)]
        res[name]["actions"] = [r.actions.tolist() for r in c.rollouts]
arrays["directions"] = nmf.components_
arrays["saw_state"] = np.frombuffer(saw_state, np.uint8)
res["saw"] = saw
np.savez(out_path, **arrays)
print("RESULT " + json.dumps(res))
"""


@pytest.fixture(scope="module")
def child(tmp_path_factory) -> tuple[dict, dict]:
    """(JSON results, arrays) of the comparisons run in a child process (~15 s)."""
    path = tmp_path_factory.mktemp("cf") / "cf.npz"
    result = result_of(run_child(CHILD, path, timeout=300))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return result, arrays


@pytest.fixture(scope="module")
def agent():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one-frame batches; restored for the other test modules
    yield load_agent()
    torch.set_num_threads(threads)


def test_identical_states_give_no_difference(child):
    res, a = child
    r = res["same"]
    # the two identical states run as two rows of one batch: equal up to float32 rounding
    # (the convolution kernels may treat rows differently), far below any real difference
    assert r["kl"] <= 1e-6
    assert r["values"][0] == pytest.approx(r["values"][1], rel=1e-6, abs=1e-6)
    assert np.array_equal(a["same_observations"][0], a["same_observations"][1])
    assert np.array_equal(a["same_attributions"][0], a["same_attributions"][1])
    assert np.allclose(r["feature_change"], 0.0)
    ro, rc = r["rollouts"]
    assert ro == rc  # same state, same seed: the same game


def test_hiding_a_saw_changes_the_observation_only_inside_its_box(child):
    res, a = child
    from rlvision_widgets.environment import parse_state

    state = a["saw_state"].tobytes()
    ann = object_boxes(parse_state(state), 64)
    k = list(ann.ids["saw"]).index(res["saw"])
    x0, y0, x1, y1 = ann.pixel_boxes("saw")[k]
    diff = (a["hid_observations"][0] != a["hid_observations"][1]).any(-1)
    box = np.zeros((64, 64), bool)
    box[y0:y1, x0:x1] = True
    assert diff.any() and not (diff & ~box).any()


def test_values_policy_and_kl_agree_with_an_independent_run(child, agent):
    res, a = child
    with torch.no_grad():
        logits, value = agent(torch.from_numpy(a["hid_observations"]))
    assert np.allclose(a["hid_values"], value.numpy(), atol=1e-5)
    assert np.allclose(a["hid_logits"], logits.numpy(), atol=1e-5)
    p, q = (torch.distributions.Categorical(logits=lg.double()) for lg in logits)
    assert res["hid"]["kl"] == pytest.approx(float(torch.distributions.kl_divergence(p, q)), 1e-6)
    assert res["hid"]["kl"] > 0
    assert np.allclose(res["hid"]["policy"], torch.softmax(logits.double(), -1).numpy())


def test_attribution_per_feature(child, agent):
    res, a = child
    ig = integrated_gradients(agent, a["hid_observations"], "2b", output="value")
    assert np.allclose(a["hid_attributions"], ig.attributions, atol=1e-5)
    # the reduction is exact: features + residual == total, per position
    total = a["hid_attributions"].sum(-1)
    assert np.allclose(a["hid_features"].sum(-1) + a["hid_residual"], total, atol=1e-4)
    assert a["hid_features"].shape == (2, 16, 16, 4)
    # NMF given as a fitted estimator, or as its (K, C) directions: the same features
    assert np.allclose(a["hid_features"], a["hid_arr_features"], atol=1e-5)
    assert np.allclose(
        np.asarray(res["hid"]["feature_change"]),
        a["hid_features"][1].sum((0, 1)) - a["hid_features"][0].sum((0, 1)),
        atol=1e-4,
    )
    # another output (a logit), no NMF: channels only
    ig_r = integrated_gradients(agent, a["hid_logit_observations"], "2b", "logit:RIGHT", steps=5)
    assert np.allclose(a["hid_logit_attributions"], ig_r.attributions, atol=1e-5)
    assert res["hid_logit"]["feature_totals"] is None


def test_rollouts_use_the_engines_cause(child):
    res, _ = child
    r = res["roll"]
    original, edited = r["rollouts"]
    # the rollout's own label and the engine's full episode replay agree
    assert [original["outcome"], edited["outcome"]] == r["causes"]
    assert edited["outcome"] == "saw"  # the saw placed on the agent kills it
    assert original["outcome"] in ("success", "unfinished", *FAILURE_CAUSES)
    assert len(r["actions"][1]) == edited["length"] < 60


def test_policy_kl_matches_torch():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(5, 15)), rng.normal(size=(5, 15))
    want = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=torch.tensor(p)),
        torch.distributions.Categorical(logits=torch.tensor(q)),
    ).numpy()
    assert np.allclose(policy_kl(p, q), want, atol=1e-12)
    assert np.allclose(policy_kl(p, p), 0.0)


def test_bad_arguments_are_refused_before_the_engine(agent):
    state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    analysis = SimpleNamespace(directions=np.ones((3, 32), np.float32), settings={"layer": "2b"})
    with pytest.raises(ValueError, match="does not match the analysis's layer"):
        compare(agent, state, state, nmf=analysis, layer="3a")
    with pytest.raises(ValueError, match=r"\(K, C\) array"):
        compare(agent, state, state, nmf=np.ones(5))
    with pytest.raises(ValueError, match="counterfactual state"):
        compare(agent, state)
    with pytest.raises(ValueError, match="counterfactual_state"):
        compare(agent, state, b"not a state" * 30)
    with pytest.raises(ValueError, match="steps must be"):
        rollout(agent, state, -1)


def test_rollout_record():
    r = Rollout(np.array([7, 7, 8]), np.zeros(3, np.float32), np.zeros(3, np.float32), "saw")
    assert (r.length, r.finished, r.success) == (3, True, False)
    assert r.to_json() == {"outcome": "saw", "length": 3, "return": 0.0, "actions": [7, 7, 8]}
