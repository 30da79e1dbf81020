"""Engine state parsing, patching and validation on the live CoinRun engine."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rlvision_widgets.environment import (
    CoinRunEnv,
    EntityType,
    EnvOptions,
    StateError,
    Tile,
    parse_state,
)
from rlvision_widgets.environment.state import ENTITY_DTYPE, harmless_copy, hide_entities

RIGHT, NOOP = 7, 4


def test_agent_x_grows_while_holding_right():
    env = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0))
    xs = [parse_state(env.get_state()[0]).agent.x]
    for _ in range(6):
        env.step(np.array([RIGHT]))
        xs.append(parse_state(env.get_state()[0]).agent.x)
    assert xs[0] == pytest.approx(1.5)  # level start: x = 1 + rx
    assert all(b > a for a, b in zip(xs[1:], xs[2:])), xs
    assert xs[-1] > xs[0] + 0.3


def test_parsed_fields_match_engine_info():
    env = CoinRunEnv(EnvOptions(num_envs=4, rand_seed=3, distribution_mode="hard"))
    for state, info in zip(env.get_state(), env.info):
        st = parse_state(state)
        assert st.level_seed == info["level_seed"]
        assert st.cur_time == 0 and st.timeout == 1000
        assert st.options["distribution_mode"] == 1 and st.options["paint_vel_info"] == 1
        assert st.grid.width * st.grid.height == 4096
        assert st.entities.dtype == ENTITY_DTYPE and st.entities[0]["type"] == EntityType.PLAYER
        a = st.agent
        assert (a.rx, round(a.ry, 4)) == (0.5, 0.5787)
        assert len(st.coins) == 1  # one GOAL tile
        assert st.grid.tile(2, 0) == Tile.WALL_TOP  # y = 0 is the floor
        assert st.grid.tile(2, 1) == Tile.SPACE  # the agent stands on it
        assert st.grid.tile(-1, 5) == Tile.WALL_MID  # outside reads as wall
        assert np.array_equal(st.enemy_directions, np.where(st.enemies["vx"] < 0, -1, 1))
        assert set(st.hazard_kinds) <= {"saw", "enemy", "lava"}


def test_set_state_get_state_round_trip_is_exact():
    env = CoinRunEnv(EnvOptions(num_envs=2, rand_seed=1))
    for _ in range(15):
        env.step(np.array([RIGHT, 8]))
    states = env.get_state()
    obs = env.observe()[0].copy()
    env.step(np.array([NOOP, NOOP]))
    env.set_state(states)
    assert env.get_state() == states
    assert np.array_equal(env.observe()[0], obs)


def test_parse_patch_serialize_round_trip(saw_level_state):
    st = parse_state(saw_level_state)
    assert st.editable().to_bytes() == saw_level_state  # untouched copy is identical
    ed = st.editable()
    ed.set_timeout(77).set_cur_time(5)
    ed.set_entities_of_type(EntityType.SAW, "render_z", 7)
    ed.set_tile(3, 1, Tile.LAVA_TOP)
    patched = ed.to_bytes()
    assert len(patched) == len(saw_level_state)
    again = parse_state(patched)
    assert (again.timeout, again.cur_time) == (77, 5)
    assert (again.saws["render_z"] == 7).all() and again.grid.tile(3, 1) == Tile.LAVA_TOP
    diff = np.flatnonzero(
        np.frombuffer(patched, np.uint8) != np.frombuffer(saw_level_state, np.uint8)
    )
    lay = st.layout
    allowed = set(range(lay.timeout, lay.timeout + 4)) | set(range(lay.cur_time, lay.cur_time + 4))
    allowed |= set(
        range(lay.grid + 4 * (1 * st.grid.width + 3), lay.grid + 4 * (st.grid.width + 4))
    )
    for k in np.flatnonzero(st.entities["type"] == EntityType.SAW):
        o = lay.entities + 124 * k + 36
        allowed |= set(range(o, o + 4))
    assert set(diff.tolist()) <= allowed  # only the patched fields changed
    env = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0))
    env.set_state_of(0, patched)  # the engine accepts it as is
    assert env.get_state_of(0) == patched
    with pytest.raises(TypeError, match="read-only"):
        st.set_timeout(3)


def test_harmless_copy_and_hidden_entities(saw_level_state):
    h = parse_state(harmless_copy(saw_level_state))
    assert h.timeout == 2**30 and (h.saws["collision_margin"] == -1000).all()
    assert len(h.lava) == 0
    hidden = parse_state(hide_entities(saw_level_state))
    assert (hidden.saws["render_z"] == 7).all()
    assert (hidden.crates["render_z"] == parse_state(saw_level_state).crates["render_z"]).all()


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b[:100], "only 100 bytes"),
        (lambda b: b[:-1], "trailer"),
        (lambda b: b[:-4] + struct.pack("<I", 0xDEADBEEF), "trailer is 0xdeadbeef"),
        (lambda b: struct.pack("<i", 3) + b[4:], "SERIALIZE_VERSION is 3"),
        (lambda b: b[:8] + b"bigfish" + b[15:], "game name is b'bigfish'"),
        (lambda b: b + b"\0\0\0\0", "trailer"),
        ("grid", "grid_size is 1234"),
    ],
)
def test_corrupted_state_bytes_raise_clear_error(saw_level_state, corrupt, message):
    if corrupt == "grid":
        st = parse_state(saw_level_state)
        off = st.layout.num_entities - 4
        bad = saw_level_state[:off] + struct.pack("<i", 1234) + saw_level_state[off + 4 :]
    else:
        bad = corrupt(saw_level_state)
    with pytest.raises(StateError, match="not a valid CoinRun state") as err:
        parse_state(bad)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)
    env = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0))
    with pytest.raises(StateError):  # never reaches the engine
        env.set_state_of(0, bad)


def test_not_bytes_is_rejected():
    with pytest.raises(StateError, match="must be bytes"):
        parse_state("coinrun")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(distribution_mode="medium"), "distribution_mode must be one of"),
        (dict(num_envs=0), "num_envs must be a positive integer"),
        (dict(num_levels=-1), "num_levels must be an integer >= 0"),
        (dict(rand_seed=-5), "rand_seed must be None or an integer"),
        (dict(invisible_saws="yes"), "invisible_saws must be True or False"),
    ],
)
def test_bad_options_give_clear_error(kwargs, message):
    with pytest.raises(ValueError, match="invalid CoinRun option") as err:
        EnvOptions(**kwargs)
    assert message in str(err.value)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"unknown CoinRun option\(s\) \['colour'\]"):
        EnvOptions.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown engine option 'speed'"):
        parse_state(CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]).editable().set_option(
            "speed", 1
        )
