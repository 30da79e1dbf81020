"""The explorer composes the counterfactual panel (issue 17, requirement 3): "Edit the shown
frame" loads the viewer's frame, a hidden saw gives the comparison with one attribution change
per NMF feature of the analysis on screen, and the explorer's agent is never touched.

Edited states reach the engine, so the explorer runs in a child process that saves what it
showed; the test checks it against an independent ``compare`` call made in the child.
"""

from __future__ import annotations

import json

from children import run_child

CHILD = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
torch.set_num_threads(1)
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.analysis.cache import model_hash
from rlvision_widgets.analysis.counterfactual import compare
from rlvision_widgets.environment.counterfactual import hide_object
from rlvision_widgets.environment.render import object_boxes
from rlvision_widgets.rollouts import collect_trajectories
from rlvision_widgets.widgets import Explorer

agent = load_agent()
before = model_hash(agent)
traj = collect_trajectories(agent, num_envs=4, num_steps=48, seed=3, progress=False)
ex = Explorer(agent, traj, rank=4, background=False, suggest_labels=False, prefetch=False)
out = {"objects_before": len(ex.cf_objects)}
frame = next(
    ((e, t) for e in range(4) for t in range(48)
     if len(object_boxes(traj.state_at(e, t), 512).boxes["saw"])),
    None,
)
out["frame"] = frame
if frame is not None:
    ex.trajectory, ex.frame = frame
    ex._on_msg(ex, {"type": "cf_follow"}, [])
    out["shown"] = [ex.cf_trajectory, ex.cf_frame]
    saw = next(o for o in ex.cf_objects if o["kind"] == "saw")
    ex._on_msg(ex, {"type": "cf_hide", "ref": saw["ref"]}, [])
    out["error"] = ex.cf_error
    out["history"] = list(ex.cf_history)
    out["result"] = ex.cf_result
    ref = compare(agent, traj.state_at(*frame), hide_object(traj.state_at(*frame), saw["ref"]),
                  layer=ex.layer, nmf=ex.directions)
    out["reference"] = {"value_change": float(ref.value_change), "kl": float(ref.kl),
                        "feature_change": [float(x) for x in np.ravel(ref.feature_change)]}
    ex._on_msg(ex, {"type": "cf_reset"}, [])
    out["history_after_reset"] = list(ex.cf_history)
out["agent_unchanged"] = model_hash(agent) == before
ex.close()
json.dump(out, open(sys.argv[1], "w"))
"""


def test_explorer_edits_the_shown_frame(tmp_path):
    path = tmp_path / "out.json"
    run_child(CHILD, path)
    out = json.loads(path.read_text())
    assert out["objects_before"] == 0  # no work until the user asks for a frame
    assert out["frame"] is not None, "no saw in view in 4 x 48 frames of seed 3"
    assert out["shown"] == out["frame"] and out["error"] == ""
    assert len(out["history"]) == 1 and "saw" in out["history"][0]
    r, ref = out["result"], out["reference"]
    assert abs(r["value_change"] - ref["value_change"]) < 1e-4
    assert abs(r["kl"] - ref["kl"]) < 1e-5
    changes = [f["change"] for f in r["features"]]
    assert len(changes) == 4  # one per NMF feature on screen
    assert max(abs(a - b) for a, b in zip(changes, ref["feature_change"])) < 1e-4
    assert out["history_after_reset"] == [] and out["agent_unchanged"]
