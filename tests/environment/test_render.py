"""Full-resolution re-rendering, invisible saws, object boxes and masks."""

from __future__ import annotations

import numpy as np
import pytest

from rlvision_widgets.environment import (
    OBJECT_CLASSES,
    CoinRunEnv,
    EntityType,
    EnvOptions,
    Renderer,
    parse_state,
)
from rlvision_widgets.environment.state import hide_entities

RIGHT = 7


@pytest.fixture(scope="module")
def renderer():
    r = Renderer()
    yield r
    r.close()


def saw_in_view(state: bytes) -> bytes:
    """The level with its first saw moved 2 tiles right of the agent (in view, on the floor)."""
    ed = parse_state(state).editable()
    k = int(np.flatnonzero(ed.entities["type"] == EntityType.SAW)[0])
    ed.entities["x"][k], ed.entities["y"][k] = 3.5, 1.5
    return ed.to_bytes()


def test_rerendered_frames_match_the_collection_env(renderer):
    env = CoinRunEnv(EnvOptions(num_envs=3, rand_seed=4, distribution_mode="hard"))
    rng = np.random.default_rng(0)
    for _ in range(3):
        for _ in range(7):
            obs, _, _ = env.step(rng.integers(0, 15, 3))
        for i, state in enumerate(env.get_state()):
            small, full = renderer.frames(state)
            assert np.array_equal(small, obs[i])  # bit-exact
            assert full.shape == (512, 512, 3) and full.dtype == np.uint8
            assert full.std() > 10  # a real picture


def test_invisible_saws_draw_no_pixels_yet_still_kill(saw_level_state, renderer, play):
    visible = saw_in_view(saw_level_state)
    hidden = hide_entities(visible)
    away = parse_state(visible).editable()  # the saw out of the level
    k = int(np.flatnonzero(away.entities["type"] == EntityType.SAW)[0])
    away.entities["x"][k], away.entities["y"][k] = 62.5, 62.5
    f_vis, f_hid, f_away = (renderer.frames(s) for s in (visible, hidden, away.to_bytes()))
    boxes = renderer.objects(visible, masks=False)
    for res, k_res in ((64, 0), (512, 1)):
        assert np.array_equal(f_hid[k_res], f_away[k_res])  # not one saw pixel drawn
        changed = (f_vis[k_res] != f_hid[k_res]).any(-1)
        assert changed.sum() > (5 if res == 64 else 300)  # ...where it would be drawn
        assert not (changed & ~boxes[res].box_mask("saw")).any()
    ann = renderer.objects(hidden)
    assert all(len(ann[r].boxes["saw"]) == 0 and not ann[r].masks["saw"].any() for r in ann)
    env, tracker, steps = play(hidden, RIGHT, replay_all=True, verify=True)
    assert [r.cause for r in tracker.records] == ["saw"] and steps < 20


def test_invisible_saws_option_hides_saws_at_every_level_start():
    env = CoinRunEnv(EnvOptions(num_envs=8, rand_seed=0, invisible_saws=True))
    seen = {"levels": 0, "saws": 0}

    def check(env, mask):
        for state in env.level_start_states(mask):
            st = parse_state(state)
            seen["levels"] += 1
            seen["saws"] += len(st.saws)
            assert (st.saws["render_z"] == 7).all()

    env.add_level_start_hook(check)
    rng = np.random.default_rng(0)
    for _ in range(300):
        env.step(rng.integers(0, 15, 8))
    for state in env.get_state():  # still hidden mid-episode
        assert (parse_state(state).saws["render_z"] == 7).all()
    assert seen["levels"] > 8 and seen["saws"] > 0


def test_masks_lie_inside_boxes(renderer, saw_level_state):
    env = CoinRunEnv(EnvOptions(num_envs=4, rand_seed=2, distribution_mode="hard"))
    rng = np.random.default_rng(1)
    states = [saw_in_view(saw_level_state)]
    for _ in range(3):
        for _ in range(40):
            env.step(rng.integers(0, 15, 4))
        states += env.get_state()
    drawn = {c: 0 for c in OBJECT_CLASSES}
    for state in states:
        ann = renderer.objects(state)
        assert set(ann) == {64, 512}
        for res, a in ann.items():
            for cls in OBJECT_CLASSES:
                mask = a.masks[cls]
                assert mask.shape == (res, res) and mask.dtype == bool
                assert not (mask & ~a.box_mask(cls)).any(), (cls, res)
                drawn[cls] += int(mask.sum())
            assert a.masks["agent"].any() and len(a.boxes["agent"]) == 1
            assert a.masks["velocity"].any()  # painted by default
    for cls in ("agent", "saw", "crate", "wall", "coin", "velocity"):
        assert drawn[cls] > 0, cls
