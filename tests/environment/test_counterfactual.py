"""Counterfactual game states (issue 17, requirement 1): edits checked against the engine.

Everything that hands an *edited* state to the engine runs in one child process (a crash there
must not kill pytest); it prints JSON facts the engine reported (its own entity list after a
step, rewards, the cause of a death, renders and per-class masks), which the tests below
check. Edits that never reach the engine (errors, byte layout) run in-process.
"""

from __future__ import annotations

import numpy as np
import pytest
from children import result_of, run_child

from rlvision_widgets.environment import CoinRunEnv, StateError, parse_state
from rlvision_widgets.environment.counterfactual import (
    Counterfactual,
    CounterfactualError,
    add_object,
    frame_state,
    hide_object,
    move_object,
    new_entity,
    objects,
    remove_object,
    set_agent,
    show_object,
)
from rlvision_widgets.environment.state import ENTITY_DTYPE, EntityType, Tile

CHILD = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
from rlvision_widgets.environment import CoinRunEnv, parse_state
from rlvision_widgets.environment.causes import classify_terminal_step
from rlvision_widgets.environment.coinrun import ScratchEnv
from rlvision_widgets.environment.render import Renderer, object_boxes
from rlvision_widgets.environment.counterfactual import (
    add_object, hide_object, move_object, objects, remove_object, set_agent,
)
from rlvision_widgets.environment.state import EntityType, HIDDEN_RENDER_Z

out = {}
r, sc = Renderer(), ScratchEnv()

def play(state, actions):
    # (steps, reward, cause or None, agent (x, y) at the end) from the engine
    sc.set_state(state)
    for t, a in enumerate(actions):
        pre = sc.get_state()
        sc.act(a)
        _, rew, first = sc.observe()
        if first:
            cause = "success" if rew > 0 else classify_terminal_step(pre, a, sc)
            return [t + 1, rew, cause, None]
    a = parse_state(sc.get_state()).agent
    return [len(actions), 0.0, None, [a.x, a.y]]

def box_mask(ann, cls, k):
    b = ann.pixel_boxes(cls)[list(ann.ids[cls]).index(k)]
    m = np.zeros((ann.resolution,) * 2, bool)
    m[b[1]:b[3], b[0]:b[2]] = True
    return m

# frames with a visible saw, enemy and crate: hold RIGHT+UP in hard mode
env = CoinRunEnv(num_envs=8, rand_seed=3, distribution_mode="hard")
found = {}
for t in range(300):
    for s in env.get_state():
        ann = object_boxes(s, 64)
        for c in ("saw", "enemy_left", "enemy_right", "crate"):
            if c not in found and len(ann.boxes[c]) and parse_state(s).cur_time > 3:
                found[c] = s
    if len(found) == 4:
        break
    env.step(np.full(8, 8))
env.close()
out["found"] = sorted(found)

# hide / remove: pixels change only inside the object's box; the engine's class mask of the
# edited frame has nothing left in that box; removing draws what hiding draws
for c, s in found.items():
    res = {}
    for reso in (64, 512):
        ann = object_boxes(s, reso)
        k = int(ann.ids[c][0])
        box = box_mask(ann, c, k)
        others = np.zeros_like(box)
        for j in ann.ids[c]:
            if int(j) != k:
                others |= box_mask(ann, c, int(j))
        own = box & ~others  # stacked crates share a pixel row
        base = r.frames(s)[reso == 512]
        hid = hide_object(s, k, trails=False)
        img = r.frames(hid)[reso == 512]
        diff = (base != img).any(-1)
        m0 = r.objects(s)[reso].masks[c]
        m1 = r.objects(hid)[reso].masks[c]
        res[reso] = dict(
            changed=int(diff.sum()), outside=int((diff & ~box).sum()),
            mask_in_box_before=int((m0 & own).sum()), mask_in_box_after=int((m1 & own).sum()),
            others_kept=int(((m0 & ~box) != (m1 & ~box)).sum()),
            remove_same=bool(np.array_equal(r.frames(remove_object(s, k, trails=False))[reso == 512], img)),
        )
    out["hide_" + c] = res

# an enemy's trail goes with it: diff within the enemy's box and the engine's trail pixels
s = found["enemy_right"]
ann = object_boxes(s, 64)
k = int(ann.ids["enemy_right"][0])
st = parse_state(s)
ed = st.editable().set_entities_of_type(EntityType.TRAIL, "render_z", HIDDEN_RENDER_Z)
trail_px = (r.frames(s)[0] != r.frames(ed.to_bytes())[0]).any(-1)
diff = (r.frames(s)[0] != r.frames(hide_object(s, k))[0]).any(-1)
out["enemy_trails"] = dict(
    trails=int((st.entities["type"] == EntityType.TRAIL).sum()),
    changed=int(diff.sum()), outside=int((diff & ~box_mask(ann, "enemy_right", k) & ~trail_px).sum()),
    more_than_box=int((diff & ~box_mask(ann, "enemy_right", k)).sum()),
)

# move: the engine's own entity list after a step has the saw where it was put, and its
# saw mask lies in the new box
s = found["saw"]
saw = objects(s, ["saw"])[0]
moved = []
for dx, dy in ((1, 0), (-1, 0), (0, 1), (0.5, 2)):
    m = move_object(s, saw.ref, saw.x + dx, saw.y + dy)
    sc.set_state(m)
    sc.act(4)
    post = parse_state(sc.get_state())
    ann = r.objects(m)[64]
    k = list(ann.ids["saw"]).index(saw.ref) if saw.ref in list(ann.ids["saw"]) else -1
    inside = None
    if k >= 0:
        b = ann.pixel_boxes("saw")[k]
        box = np.zeros((64, 64), bool); box[b[1]:b[3], b[0]:b[2]] = True
        inside = int((ann.masks["saw"] & box).sum())
    moved.append(dict(asked=[saw.x + dx, saw.y + dy],
                      engine=[[float(e["x"]), float(e["y"])] for e in post.saws],
                      mask_in_new_box=inside))
out["move_saw"] = moved
rm = remove_object(s, saw.ref)
sc.set_state(rm); sc.act(4)
out["remove_saw"] = [[float(e["x"]), float(e["y"])] for e in parse_state(sc.get_state()).saws]

# additions at level start of level seed 0 (agent at (1.5, 1.58), free cells x 1..4, y 1..2)
s0 = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
RIGHT, NOOP = 7, 4
out["plain_right"] = play(s0, [RIGHT] * 10)
out["coin_right"] = play(add_object(s0, "coin", 3.5, 1.5), [RIGHT] * 10)
out["coin_noop"] = play(add_object(s0, "coin", 3.5, 1.5), [NOOP] * 10)
out["saw_right"] = play(add_object(s0, "saw", 3.5, 1.5), [RIGHT] * 10)
out["saw_noop"] = play(add_object(s0, "saw", 3.5, 1.5), [NOOP] * 10)
hidden_saw = hide_object(add_object(s0, "saw", 3.5, 1.5), len(parse_state(s0).entities))
out["hidden_saw_right"] = play(hidden_saw, [RIGHT] * 10)
out["hidden_saw_drawn"] = bool((r.frames(hidden_saw)[0] != r.frames(s0)[0]).any())
out["enemy_left_noop"] = play(add_object(s0, "enemy", 3.5, 1.5, direction=-1), [NOOP] * 20)
en = add_object(s0, "enemy", 3.5, 1.5, direction=1)
sc.set_state(en)
walk = []
for t in range(6):
    sc.act(NOOP)
    p = parse_state(sc.get_state())
    walk.append([float(p.enemies["x"][0]), int((p.entities["type"] == EntityType.TRAIL).sum())])
out["enemy_walk"] = walk
# a crate carries a falling agent: it lands on top of it, not on the floor
drop = dict(x=3.5, y=4.6)
out["fall_floor"] = play(set_agent(s0, **drop), [NOOP] * 15)
out["fall_crate"] = play(set_agent(add_object(s0, "crate", 3.5, 1.5), **drop), [NOOP] * 15)
# agent position and velocity
ob0 = r.frames(s0)[0]
moved_agent = set_agent(s0, x=3.5)
out["agent_moved"] = play(moved_agent, [NOOP] * 3)
out["agent_moved_obs_changed"] = int((r.frames(moved_agent)[0] != ob0).any(-1).sum())
fast = set_agent(s0, vx=0.5)
out["agent_fast"] = play(fast, [NOOP])
vel = object_boxes(s0, 64).pixel_boxes("velocity")[0]
d = (r.frames(fast)[0] != ob0).any(-1)
vbox = np.zeros((64, 64), bool); vbox[vel[1]:vel[3], vel[0]:vel[2]] = True
out["velocity_obs"] = dict(changed=int(d.sum()), outside=int((d & ~vbox).sum()))
# many entities: the engine takes the most the state checks allow
big = s0
for i in range(60):
    big = add_object(big, "saw", 20.5 + i % 20, 40.5 + i // 20, allow_overlap=True)
sc.set_state(big); sc.replay([NOOP] * 5)
out["big"] = [len(parse_state(big).entities), len(parse_state(sc.get_state()).saws)]
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def engine() -> dict:
    """Facts the engine reported about edited states (one child process, ~10-20 s)."""
    return result_of(run_child(CHILD, timeout=300))


@pytest.fixture(scope="module")
def saw_state() -> bytes:
    """Level start (rand_seed 1, easy): 2 saws, 5 enemies, 10 crates, one coin."""
    env = CoinRunEnv(num_envs=1, rand_seed=1)
    state = env.get_state()[0]
    env.close()
    return state


@pytest.fixture(scope="module")
def start0() -> bytes:
    env = CoinRunEnv(num_envs=1, rand_seed=0)
    state = env.get_state()[0]
    env.close()
    return state


# -- engine ground truth (child process) -------------------------------------------------------
def test_child_found_every_class(engine):
    assert engine["found"] == ["crate", "enemy_left", "enemy_right", "saw"]


@pytest.mark.parametrize("cls", ["saw", "enemy_left", "enemy_right", "crate"])
def test_hiding_changes_pixels_only_inside_the_box(engine, cls):
    for reso, r in engine[f"hide_{cls}"].items():
        assert r["changed"] > 0, (reso, r)
        assert r["outside"] == 0, (reso, r)
        # the engine's own per-class mask: drawn in the box before, nothing there after,
        # every other object of the class untouched
        assert r["mask_in_box_before"] > 0 and r["mask_in_box_after"] == 0, (reso, r)
        assert r["others_kept"] == 0, (reso, r)
        assert r["remove_same"], (reso, r)


def test_hiding_an_enemy_hides_its_trail(engine):
    r = engine["enemy_trails"]
    assert r["trails"] > 0
    assert r["more_than_box"] > 0  # the trail went too
    assert r["outside"] == 0  # ... and nothing but the enemy and trails changed


def test_moved_saw_is_where_asked_in_the_engine(engine):
    for m in engine["move_saw"]:
        assert m["asked"] in m["engine"], m
        assert m["mask_in_new_box"] is None or m["mask_in_new_box"] > 0, m
    assert any(m["mask_in_new_box"] for m in engine["move_saw"])


def test_removed_saw_is_gone_from_the_engine(engine):
    moved_from = engine["move_saw"][0]["asked"]
    before = [[moved_from[0] - 1, moved_from[1]]]
    assert not any(p in engine["remove_saw"] for p in before)
    assert len(engine["remove_saw"]) == len(engine["move_saw"][0]["engine"]) - 1


def test_added_coin_is_collected_with_the_reward(engine):
    steps, rew, cause, _ = engine["coin_right"]
    assert (rew, cause) == (10.0, "success") and steps < 10
    assert engine["plain_right"][2] is None  # without it, ten steps right end nothing
    assert engine["coin_noop"][2] is None


def test_added_saw_kills_and_hidden_saw_still_kills(engine):
    assert engine["saw_right"][2] == "saw"
    assert engine["saw_noop"][2] is None
    assert engine["hidden_saw_right"][2] == "saw"
    assert engine["hidden_saw_right"][0] == engine["saw_right"][0]
    assert not engine["hidden_saw_drawn"]


def test_added_enemy_walks_and_kills(engine):
    assert engine["enemy_left_noop"][2] == "enemy_left"
    xs = [w[0] for w in engine["enemy_walk"]]
    assert np.allclose(np.diff(xs), 0.15, atol=1e-4)
    assert [w[1] for w in engine["enemy_walk"]] == list(range(1, 7))  # one trail per step


def test_added_crate_carries_the_agent(engine):
    floor_y, crate_y = engine["fall_floor"][3][1], engine["fall_crate"][3][1]
    assert floor_y == pytest.approx(1 + 0.5787, abs=1e-3)
    assert crate_y == pytest.approx(2 + 0.5787, abs=1e-3)


def test_agent_position_and_velocity(engine):
    assert engine["agent_moved"][3] == pytest.approx([3.5, 1.5787], abs=1e-3)
    assert engine["agent_moved_obs_changed"] > 0
    x_after = engine["agent_fast"][3][0]
    assert x_after > 1.5 + 0.1  # the engine kept the velocity it was given
    assert engine["velocity_obs"]["changed"] > 0 and engine["velocity_obs"]["outside"] == 0


def test_engine_takes_many_added_entities(engine):
    n_entities, n_saws_after = engine["big"]
    assert n_saws_after == 60 and n_entities >= 61


# -- edits without the engine ----------------------------------------------------------------
def test_objects_lists_every_entity_and_tile(saw_state):
    st = parse_state(saw_state)
    objs = objects(saw_state)
    ents = [o for o in objs if not o.is_tile]
    assert [o.ref for o in ents] == [
        i for i, t in enumerate(st.entities["type"]) if t != EntityType.TRAIL
    ]
    assert sum(o.kind == "saw" for o in objs) == len(st.saws) == 2
    assert [o.ref for o in objs if o.kind == "coin"] == [tuple(c) for c in st.coins.tolist()]
    a = objs[0]
    assert (a.kind, a.x, a.y) == ("agent", st.agent.x, st.agent.y)


def test_hide_and_show_round_trip(saw_state):
    saw = objects(saw_state, ["saw"])[0]
    hidden = hide_object(saw_state, saw.ref)
    assert len(hidden) == len(saw_state)
    diff = np.frombuffer(hidden, np.uint8) != np.frombuffer(saw_state, np.uint8)
    off = parse_state(saw_state).layout.entities + saw.ref * ENTITY_DTYPE.itemsize
    assert np.flatnonzero(diff).tolist() == [off + 36]  # render_z only
    assert show_object(hidden, saw.ref) == saw_state


def test_remove_shifts_the_entity_list(saw_state):
    st = parse_state(saw_state)
    saw = objects(saw_state, ["saw"])[0]
    rm = parse_state(remove_object(saw_state, saw.ref))
    assert len(rm.entities) == len(st.entities) - 1
    keep = np.delete(np.arange(len(st.entities)), saw.ref)
    assert rm.entities.tobytes() == st.entities[keep].tobytes()
    coin = objects(saw_state, ["coin"])[0]
    gone = parse_state(remove_object(saw_state, coin.ref))
    assert gone.grid.tile(*coin.ref) == Tile.SPACE and len(gone.coins) == 0


def test_added_entities_match_the_engines_own(saw_state):
    st = parse_state(saw_state)
    for kind, t in (("saw", EntityType.SAW), ("enemy", EntityType.ENEMY), ("crate", 20)):
        ref = st.entities[st.entities["type"] == t][0]
        mine = new_entity(kind, float(ref["x"]), float(ref["y"]), 1 if ref["vx"] >= 0 else -1)
        mine["image_theme"] = ref["image_theme"]
        if kind == "enemy":  # animation and facing are rewritten every step
            mine["image_type"], mine["is_reflected"] = ref["image_type"], ref["is_reflected"]
        # fields the engine made at level generation (life_time counts steps since)
        fields = [f for f in ENTITY_DTYPE.names if f not in ("life_time",)]
        assert {f: mine[f].item() for f in fields} == {f: ref[f].item() for f in fields}, kind


def test_add_changes_length_and_count(start0):
    more = add_object(start0, "enemy", 3.5, 1.5, direction=-1, theme=4)
    st0, st = parse_state(start0), parse_state(more)
    assert len(more) - len(start0) == ENTITY_DTYPE.itemsize
    assert len(st.entities) == len(st0.entities) + 1
    e = st.entities[-1]
    assert (e["type"], e["image_theme"], float(e["vx"])) == (EntityType.ENEMY, 4, np.float32(-0.15))
    coin = add_object(start0, "coin", 3.5, 2.5)
    assert len(coin) == len(start0) and parse_state(coin).grid.tile(3, 2) == Tile.GOAL


def test_counterfactual_value_object(saw_state):
    saws = [o.ref for o in objects(saw_state, ["saw"])]
    cf = Counterfactual(saw_state).hide(saws[0]).remove(saws[1]).add("crate", 3.5, 1.5)
    assert len(cf.edits) == len(cf.history) == 3
    assert cf.original == saw_state and cf.state == cf.history[-1]
    assert cf.undo().state == cf.history[1] and cf.reset().state == saw_state
    assert frame_state(cf) == cf.state
    assert [o.hidden for o in cf.objects(["saw"])] == [True]
    moved = cf.set_agent(x=2.5, vy=0.5)
    assert parse_state(moved.state).agent.x == 2.5 and moved.edits[-1] == "set agent x=2.5, vy=0.5"


class _FakeTrajectories:
    def __init__(self, state):
        self.state, self.calls = state, []

    def state_at(self, env, step):
        self.calls.append((env, step))
        return self.state


def test_frame_state_from_trajectories(saw_state):
    traj = _FakeTrajectories(saw_state)
    assert Counterfactual.from_trajectory(traj, 1, 7).original == saw_state
    assert traj.calls == [(1, 7)]
    with pytest.raises(CounterfactualError, match="needs env and step"):
        frame_state(traj)
    with pytest.raises(StateError):
        frame_state(b"x" * 300)


def test_errors_name_what_is_wrong(saw_state, start0):
    saw = objects(saw_state, ["saw"])[0]
    coin = objects(saw_state, ["coin"])[0]
    with pytest.raises(CounterfactualError, match="cannot be hidden"):
        hide_object(saw_state, coin.ref)
    with pytest.raises(CounterfactualError, match="agent cannot be removed"):
        remove_object(saw_state, 0)
    with pytest.raises(CounterfactualError, match="no entity 999"):
        hide_object(saw_state, 999)
    with pytest.raises(CounterfactualError, match="holds no coin or lava"):
        remove_object(saw_state, (2, 2))
    with pytest.raises(CounterfactualError, match="WALL"):
        move_object(saw_state, saw.ref, saw.x, saw.y - 1)  # into the ground
    with pytest.raises(CounterfactualError, match="outside the level"):
        move_object(saw_state, saw.ref, 70.0, 5.5)
    with pytest.raises(CounterfactualError, match="overlaps entity 0"):
        add_object(start0, "saw", 2.0, 1.5)
    assert add_object(start0, "saw", 2.0, 1.5, allow_overlap=True)
    with pytest.raises(CounterfactualError, match="theme of a enemy must be in 0..8"):
        add_object(start0, "enemy", 3.5, 1.5, theme=9)
    with pytest.raises(CounterfactualError, match="addable kinds"):
        add_object(start0, "lava", 3.5, 1.5)
    # the state checks that guard loaded files guard edits too, naming the field
    with pytest.raises(StateError, match="vx is 100.0") as err:
        set_agent(start0, vx=100.0)
    assert err.value.field == "entity 0 (type 0) vx"
    with pytest.raises(StateError, match="vy"):
        set_agent(start0, vy=float("nan"))


def test_adding_refuses_past_the_entity_limit(start0):
    big = start0
    for _ in range(200):
        big = add_object(big, "enemy", 3.5, 1.5, allow_overlap=True)
    with pytest.raises(CounterfactualError, match="trails"):
        for _ in range(20):
            big = add_object(big, "enemy", 3.5, 1.5, allow_overlap=True)


def test_lava_tiles_can_be_removed_and_moved():
    env = CoinRunEnv(num_envs=1, rand_seed=10)  # a level with 12 lava tiles
    state = env.get_state()[0]
    env.close()
    lava = objects(state, ["lava"])
    assert len(lava) == len(parse_state(state).lava) > 0
    first = lava[0]
    gone = parse_state(remove_object(state, first.ref))
    assert gone.grid.tile(*first.ref) == Tile.SPACE and len(gone.lava) == len(lava) - 1
    with pytest.raises(CounterfactualError, match="cannot be hidden"):
        hide_object(state, first.ref)
