"""CounterfactualPanel (issue 17, requirement 3) through its message API, on the shipped agent.

Edited states reach the engine, so the panel runs in one child process that drives it with the
browser's messages (``cf_click``, ``cf_hide``, ``cf_undo``, ``cf_reset``) and state updates
(``cf_mode``, ``cf_palette_kind``) and saves what it showed; the tests compare that with ground
truth made independently in the child: the engine's own render of the edited state
(``render_state(hide_object(...))``), the object's box from ``object_boxes``, and a separate
``compare`` call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from children import run_child

from rlvision_widgets.environment import CoinRunEnv
from rlvision_widgets.widgets.counterfactual_panel import CounterfactualPanel, pixel_to_world

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
torch.set_num_threads(1)
from rlvision_widgets.agents.registry import load_agent
from rlvision_widgets.analysis.counterfactual import compare
from rlvision_widgets.environment import parse_state
from rlvision_widgets.environment.counterfactual import (
    CounterfactualError, hide_object, move_object, objects, render_state)
from rlvision_widgets.environment.render import object_boxes
from rlvision_widgets.widgets.counterfactual_panel import CounterfactualPanel

out = sys.argv[1]
saw_state, other = (open(p, "rb").read() for p in sys.argv[2:4])

class Traj:  # what the panel needs of Trajectories: state_at and obs' (E, T) shape
    obs = np.zeros((1, 2, 1, 1, 3), np.uint8)
    def state_at(self, e, step):
        return [saw_state, other][step]

agent = load_agent()
C = compare(agent, saw_state, saw_state).attributions.shape[-1]
directions = np.random.default_rng(0).random((3, C)).astype(np.float32)
panel = CounterfactualPanel(agent, Traj(), directions=directions, feature_labels=["a", "b"])
send = lambda **m: panel.handle_counterfactual_message(m)
ann = object_boxes(saw_state, 512)
saw_ref = int(ann.ids["saw"][0])
saw_box = ann.pixel_boxes("saw")[0].tolist()
res = {"saw_ref": saw_ref, "saw_box": saw_box, "objects0": panel.cf_objects,
       "result0": panel.cf_result}
arr = {"original": panel.cf_original.decode()[0, 0]}

# click in the saw's box selects it
x0, y0, x1, y1 = saw_box
send(type="cf_click", x=(x0 + x1) / 2, y=(y0 + y1) / 2)
res["selected"] = panel.cf_selected
# hide it (the selected object), timed
t0 = time.perf_counter()
send(type="cf_hide", ref=panel.cf_selected)
res["hide_wall_s"] = time.perf_counter() - t0
res["timings"] = panel.timings
res["history_hide"] = list(panel.cf_history)
res["result_hide"] = panel.cf_result
res["error_hide"] = panel.cf_error
arr["edited_hide"] = panel.cf_edited.decode()[0, 0]
hidden = hide_object(saw_state, saw_ref)
arr["truth_hide"] = render_state(hidden)[1]
c = compare(agent, saw_state, hidden, nmf=directions)
res["truth_values"] = [float(v) for v in c.values]
res["truth_kl"] = float(c.kl)
res["truth_feature_change"] = [float(v) for v in c.feature_change]
res["objects_hide"] = panel.cf_objects

# a bad reference from the browser: refused with the reason, nothing changes
send(type="cf_hide", ref=99)
res["error_bad_ref"] = panel.cf_error
res["history_bad_ref"] = list(panel.cf_history)
try:
    panel.hide(99)
    res["raise_bad_ref"] = ""
except CounterfactualError as e:
    res["raise_bad_ref"] = str(e)

# undo, then move the saw by clicking: the first free cell centre in view
send(type="cf_undo")
res["history_undo"] = list(panel.cf_history)
arr["edited_undo"] = panel.cf_edited.decode()[0, 0]
st = parse_state(saw_state)
a = st.agent
free = None
for dx in range(-5, 6):
    for dy in range(-5, 6):
        cx, cy = np.floor(a.x) + dx + 0.5, np.floor(a.y) + dy + 0.5
        try:
            move_object(saw_state, saw_ref, cx, cy)
        except CounterfactualError:
            continue
        if (cx, cy) != (objects(saw_state)[saw_ref].x, objects(saw_state)[saw_ref].y):
            free = (float(cx), float(cy))
            break
    if free:
        break
unit = 512 / st.visibility
px = ((free[0] - a.x) + st.visibility / 2) * unit
py = (st.visibility / 2 - (free[1] - a.y)) * unit
res["free"] = free
send(type="cf_click", x=(x0 + x1) / 2, y=(y0 + y1) / 2)
panel.set_state({"cf_mode": "move"})
send(type="cf_click", x=px, y=py)
res["history_move"] = list(panel.cf_history)
res["error_move"] = panel.cf_error
res["moved_to"] = [(o.x, o.y) for o in panel.counterfactual.objects() if o.ref == saw_ref][0]
res["mode_after_move"] = panel.cf_mode
# palette: a crate where the saw was (free again now)
panel.set_state({"cf_palette_kind": "crate", "cf_mode": "add"})
send(type="cf_click", x=(x0 + x1) / 2, y=(y0 + y1) / 2)
res["history_add"] = list(panel.cf_history)
res["error_add"] = panel.cf_error
res["crates"] = [(o.x, o.y) for o in panel.counterfactual.objects(["crate"])]
res["saw_xy"] = [objects(saw_state)[saw_ref].x, objects(saw_state)[saw_ref].y]
# drag and drop: the crate to the free cell's pixel
crate_ref = [o.ref for o in panel.counterfactual.objects(["crate"])][-1]
send(type="cf_drag", ref=crate_ref, x=px, y=py - 0)
res["error_drag_onto_saw"] = panel.cf_error  # the moved saw is there: refused
res["history_drag_refused"] = list(panel.cf_history)
# a refused browser value for a trait: the old value is kept
res["mode_before_bad"] = panel.cf_mode
panel.set_state({"cf_mode": "fly"})
res["mode_after_bad"] = panel.cf_mode
# per-frame history: another frame, then back
panel.select_frame(0, 1)
res["history_other_frame"] = list(panel.cf_history)
panel.select_frame(0, 0)
res["history_back"] = list(panel.cf_history)
try:
    panel.select_frame(0, 5)
    res["raise_bad_frame"] = ""
except CounterfactualError as e:
    res["raise_bad_frame"] = str(e)
send(type="cf_reset")
res["history_reset"] = list(panel.cf_history)
res["result_reset"] = panel.cf_result
arr["edited_reset"] = panel.cf_edited.decode()[0, 0]
np.savez_compressed(out + ".npz", **arr)
with open(out + ".json", "w") as f:
    json.dump(res, f)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, saw_in_view_files):
    out = tmp_path_factory.mktemp("cf_panel") / "panel"
    run_child(CHILD, out, *saw_in_view_files)
    res = json.loads(Path(f"{out}.json").read_text())
    with np.load(f"{out}.npz") as z:
        arr = {k: z[k] for k in z.files}
    return res, arr


def test_click_in_a_saws_box_selects_it(run):
    res, _ = run
    assert res["selected"] == res["saw_ref"]
    kinds = {o["ref"]: o["kind"] for o in res["objects0"] if not isinstance(o["ref"], list)}
    assert kinds[res["saw_ref"]] == "saw"


def test_hide_changes_only_pixels_in_the_objects_box(run):
    res, arr = run
    assert res["error_hide"] == ""
    assert res["history_hide"] == [f"hide saw {res['saw_ref']}"]
    # what the panel shows is the engine's own render of the hidden state
    np.testing.assert_array_equal(arr["edited_hide"], arr["truth_hide"])
    diff = (arr["edited_hide"] != arr["original"]).any(-1)
    x0, y0, x1, y1 = res["saw_box"]
    inside = np.zeros_like(diff)
    inside[y0:y1, x0:x1] = True
    assert diff[inside].sum() > 50
    assert not diff[~inside].any()
    # the hidden saw is no longer offered for selection
    assert res["saw_ref"] not in [o["ref"] for o in res["objects_hide"]]


def test_result_matches_an_independent_compare(run):
    res, _ = run
    r = res["result_hide"]
    v0, v1 = res["truth_values"]
    assert r["value"] == pytest.approx(v0, abs=1e-5)
    assert r["value_edited"] == pytest.approx(v1, abs=1e-5)
    assert r["value_change"] == pytest.approx(v1 - v0, abs=1e-5)
    assert r["kl"] == pytest.approx(res["truth_kl"], abs=1e-7)
    assert [f["change"] for f in r["features"]] == pytest.approx(
        res["truth_feature_change"], rel=1e-4, abs=1e-6
    )
    assert [f["label"] for f in r["features"]] == ["a", "b", "feature 3"]
    changes = [abs(p["change"]) for p in r["policy_changes"]]
    assert changes == sorted(changes, reverse=True)
    # no edit: the same observation twice in one batch, equal up to float32 rounding
    assert res["result0"]["value_change"] == pytest.approx(0.0, abs=1e-5)
    assert res["result0"]["kl"] <= 1e-6


def test_bad_reference_is_refused_with_the_reason(run):
    res, _ = run
    assert "no object 99" in res["error_bad_ref"]
    assert res["history_bad_ref"] == res["history_hide"]
    assert "no object 99" in res["raise_bad_ref"]
    assert "outside the trajectories" in res["raise_bad_frame"]
    assert res["mode_before_bad"] == "add"  # the palette stays active to place several
    assert res["mode_after_bad"] == "add"


def test_history_undo_move_add_reset(run):
    res, arr = run
    ref = res["saw_ref"]
    assert res["history_undo"] == []
    np.testing.assert_array_equal(arr["edited_undo"], arr["original"])
    assert res["error_move"] == ""
    assert res["history_move"] == [f"move saw {ref} to ({res['free'][0]:g}, {res['free'][1]:g})"]
    assert res["moved_to"] == pytest.approx(res["free"])
    assert res["mode_after_move"] == "select"
    assert res["error_add"] == ""
    assert res["history_add"][-1].startswith("add crate at")
    assert [tuple(c) for c in res["crates"]][-1] == pytest.approx(tuple(res["saw_xy"]))
    assert "overlaps entity" in res["error_drag_onto_saw"]
    assert res["history_drag_refused"] == res["history_add"]
    assert res["history_other_frame"] == []
    assert res["history_back"] == res["history_add"]
    assert res["history_reset"] == []
    np.testing.assert_array_equal(arr["edited_reset"], arr["original"])
    assert res["result_reset"]["kl"] == 0.0


def test_edit_compare_render_timing_is_recorded(run):
    res, _ = run
    t = res["timings"]
    assert set(t) == {"render", "compare", "encode", "total"}
    assert 0 < t["total"] <= res["hide_wall_s"]


def test_pixel_to_world_inverts_object_boxes():
    from rlvision_widgets.environment.counterfactual import objects
    from rlvision_widgets.environment.render import object_boxes

    state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]
    ann = object_boxes(state, 512)
    objs = {o.ref: o for o in objects(state)}
    for cls in ("agent", "saw", "enemy_left", "enemy_right", "crate"):
        for box, ref in zip(ann.boxes[cls], ann.ids[cls]):
            o = objs[int(ref)]
            x0, y0, x1, y1 = (float(v) for v in box)
            if cls == "agent" or min(x0, y0) <= 0 or max(x1, y1) >= 512:
                continue  # the agent's box is stretched; clipped boxes have moved centres
            x, y = pixel_to_world(state, (x0 + x1) / 2, (y0 + y1) / 2)
            assert (x, y) == pytest.approx((o.x, o.y), abs=1e-3)


def test_constructor_errors_are_clear():
    with pytest.raises(TypeError, match="unknown keyword"):
        CounterfactualPanel(None, None, cf_bogus=1)
    p = CounterfactualPanel(None, None)
    assert p.handle_counterfactual_message({"type": "rerun"}) is False  # not the panel's
    assert p.handle_counterfactual_message({"type": "cf_fly"}) is True
    assert "unknown counterfactual message 'cf_fly'" in p.cf_error
    p.handle_counterfactual_message({"type": "cf_hide", "ref": 1})
    assert "select_frame" in p.cf_error
    with pytest.raises(Exception, match="select_frame"):
        p.hide(1)
    with pytest.raises(Exception, match="no trajectories"):
        p.select_frame(0, 0)
    p.close()
    assert p._cf_renderer is None
