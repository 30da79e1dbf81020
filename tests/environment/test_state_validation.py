"""Engine states from untrusted files: every field the engine reads is range-checked before the
engine sees it (procgen's ``fassert`` aborts the whole process otherwise).

Engine calls on crafted or fuzzed states run in a child process; the child must exit 0, either
because validation refused the state (StateError) or because the engine took it, rendered it and
stepped it without aborting.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlvision_widgets.environment import CoinRunEnv, EnvOptions, StateError, parse_state
from rlvision_widgets.environment.state import (
    ENTITY_DTYPE,
    IMAGE_THEMES,
    NUM_BACKGROUNDS,
    NUM_WALL_THEMES,
    EntityType,
    Tile,
)

ROOT = Path(__file__).resolve().parents[2]

# The child: reads cases (one state per line, hex) and feeds each to the engine through the
# package (validated) or, with --raw, straight to procgen (no validation: the ground truth).
CHILD = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
from rlvision_widgets.environment import EnvOptions, StateError
from rlvision_widgets.environment.coinrun import ScratchEnv, make_procgen
path, raw = sys.argv[1], "--raw" in sys.argv
rng = np.random.default_rng(0)
scratch = ScratchEnv(EnvOptions(num_envs=1), render=True)
accepted = rejected = 0
for i, line in enumerate(open(path)):
    state = bytes.fromhex(line.strip())
    print("case", i, flush=True)
    if raw:
        scratch.env.call_c_func("set_state", 0, state, len(state))
    else:
        try:
            scratch.set_state(state)
        except StateError:
            rejected += 1
            continue
    scratch.frames()                                  # 64x64 and 512x512 re-render
    scratch.replay(rng.integers(0, 15, 40).tolist())  # what Trajectories.state_at does
    scratch.frames()
    scratch.get_state()
    accepted += 1
print("done", accepted, rejected, flush=True)
"""


def run_child(states: list[bytes], tmp_path: Path, raw: bool = False, timeout: float = 300):
    cases = tmp_path / f"cases-{len(states)}-{int(raw)}.txt"
    cases.write_text("".join(s.hex() + "\n" for s in states))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", CHILD, str(cases)] + (["--raw"] if raw else [])
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def last_case(proc) -> int:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("case ")]
    return int(lines[-1].split()[1]) if lines else -1


@pytest.fixture(scope="module")
def real_states() -> list[bytes]:
    """Level-start and mid-level states, easy and hard, with saws, enemies and crates."""
    out = []
    for mode, seed in (("hard", 1), ("easy", 2)):
        env = CoinRunEnv(EnvOptions(num_envs=4, rand_seed=seed, distribution_mode=mode))
        out += env.get_state()
        rng = np.random.default_rng(seed)
        for _ in range(30):
            env.step(rng.integers(0, 15, 4))
        out += env.get_state()
        env.close()
    return out


# -- field offsets (docs/procgen-coinrun-state.md), for field-targeted mutations --------------
def field_offsets(state: bytes) -> dict[str, tuple[int, str]]:
    """name -> (byte offset, 'i' or 'f') of every scalar the engine reads, and of the fields of
    the first few entities, the counts and string lengths, and a few grid cells."""
    st = parse_state(state)
    lay = st.layout
    out: dict[str, tuple[int, str]] = {}
    for k in range(12):
        out[f"option{k}"] = (15 + 4 * k, "i")
    for k, name in enumerate(("grid_step", "seed_low", "seed_high", "game_type", "game_n")):
        out[name] = (63 + 4 * k, "i")
    out["lsrg_seeded"], out["lsrg_len"] = (83, "i"), (87, "i")
    rg = 83 + 8 + struct.unpack_from("<i", state, 87)[0]
    out["rg_seeded"], out["rg_len"] = (rg, "i"), (rg + 4, "i")
    names = "reward done level_complete action timeout seed prev_seed episodes_remaining "
    names += "episode_done last_reward_timer last_reward default_action asset_seed"
    for k, name in enumerate(names.split()):
        out[name] = (lay.reward + 4 * k, "f" if name in ("reward", "last_reward") else "i")
    out["cur_time"], out["is_waiting"] = (lay.cur_time, "i"), (lay.cur_time + 4, "i")
    out["grid_size"], out["num_entities"] = (lay.num_entities - 4, "i"), (lay.num_entities, "i")
    for k in range(min(3, len(st.entities))):
        for name in ENTITY_DTYPE.names:
            kind = ENTITY_DTYPE[name].kind
            out[f"entity{k}.{name}"] = (lay.entities + 124 * k + ENTITY_DTYPE.fields[name][1], kind)
    end = lay.entities + 124 * len(st.entities)
    block = "use_procgen_background:i background_index:i bg_tile_ratio:f bg_pct_x:f char_dim:f "
    block += "last_move_action:i move_action:i special_action:i mixrate:f maxspeed:f max_jump:f "
    block += "action_vx:f action_vy:f action_vrot:f center_x:f center_y:f "
    block += "random_agent_start:i has_useful_vel_info:i step_rand_int:i asset_seeded:i asset_len:i"
    for k, item in enumerate(block.split()):
        name, kind = item.split(":")
        out[name] = (end + 4 * k, kind)
    for k, name in enumerate(("main_width", "main_height", "out_of_bounds_object")):
        out[name] = (lay.main_size + 4 * k, "i")
    for k, name in enumerate(("unit", "view_dim", "x_off", "y_off", "visibility", "min_vis")):
        out[name] = (lay.view + 4 * k, "f")
    for k, name in enumerate(("grid_w", "grid_h", "grid_n")):
        out[name] = (lay.grid_header + 4 * k, "i")
    for cell in (0, 65, 130, 2000, 4095):
        out[f"grid{cell}"] = (lay.grid + 4 * cell, "i")
    coin = "last_agent_y:f wall_theme:i has_support:i facing_right:i is_on_crate:i gravity:f "
    coin += "air_control:f"
    for k, item in enumerate(coin.split()):
        name, kind = item.split(":")
        out[name] = (lay.coinrun + 4 * k, kind)
    return out


INT_VALUES = [0, 1, -1, 2, 5, 7, 9, 10, 20, 59, 63, 64, 100, 101, 2**24, 2**31 - 1, -(2**31)]
FLOAT_VALUES = [0.0, 1.0, -1.0, 0.5, 2.0, 1e30, -1e30, float("nan"), float("inf"), -float("inf")]


def mutate(state: bytes, offset: int, kind: str, value) -> bytes:
    b = bytearray(state)
    if kind == "f":
        struct.pack_into("<f", b, offset, float(value))
    else:
        struct.pack_into("<i", b, offset, int(value))
    return bytes(b)


def fuzz_cases(states: list[bytes], seed: int, n_targeted: int, n_flips: int, n_random: int):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_targeted):  # one field set to an extreme (or boundary) value
        s = states[rng.integers(len(states))]
        offs = field_offsets(s)
        name = list(offs)[rng.integers(len(offs))]
        off, kind = offs[name]
        pool = FLOAT_VALUES if kind == "f" else INT_VALUES
        # reinterpreting the other type's bit pattern also hits huge / NaN values
        if rng.random() < 0.2:
            kind = "i" if kind == "f" else "f"
            pool = FLOAT_VALUES if kind == "f" else INT_VALUES
        cases.append(mutate(s, off, kind, pool[rng.integers(len(pool))]))
    for _ in range(n_flips):  # random bit flips anywhere
        b = bytearray(states[rng.integers(len(states))])
        for pos in rng.integers(0, len(b) * 8, rng.integers(1, 9)):
            b[pos // 8] ^= 1 << (pos % 8)
        cases.append(bytes(b))
    for _ in range(n_random):  # random bytes, and real headers followed by random bytes
        n = int(rng.integers(0, 60000))
        junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        cases.append(junk if rng.random() < 0.5 else states[0][:91] + junk)
    return cases


def test_fuzzed_states_never_kill_the_process(real_states, tmp_path):
    cases = fuzz_cases(real_states, seed=0, n_targeted=260, n_flips=100, n_random=20)
    accepted = 0
    for s in cases:
        try:
            parse_state(s)
            accepted += 1
        except StateError as e:
            assert "not a valid CoinRun state" in str(e)
    proc = run_child(cases + real_states, tmp_path)
    assert proc.returncode == 0, (
        f"engine died (rc {proc.returncode}) on fuzz case {last_case(proc)}: {proc.stderr[-2000:]}"
    )
    done = proc.stdout.splitlines()[-1].split()
    assert done[0] == "done"
    # the real states and part of the fuzzed ones reach the engine; the rest are refused
    assert int(done[1]) == accepted + len(real_states)
    assert int(done[2]) == len(cases) - accepted
    assert 0 < accepted < len(cases)


# -- the bounds are the engine's: one past them aborts procgen, the bound itself does not ----
def _first(st, etype: int) -> int:
    return int(np.flatnonzero(st.entities["type"] == etype)[0])


def _crafted(state: bytes, what: str, value: int) -> bytes:
    st = parse_state(state)
    offs = field_offsets(state)
    if what == "background_index":
        return mutate(state, offs["background_index"][0], "i", value)
    if what == "wall_theme":
        return mutate(state, offs["wall_theme"][0], "i", value)
    if what == "tile":
        return mutate(state, st.layout.grid + 4 * (2 * 64 + 3), "i", value)  # cell (3, 2)
    k = _first(st, EntityType.ENEMY)
    field = "image_type" if what == "enemy_image" else "image_theme"
    return mutate(state, st.layout.entities + 124 * k + ENTITY_DTYPE.fields[field][1], "i", value)


CRAFTED = [  # (what, largest valid value, a value the engine aborts on)
    ("background_index", NUM_BACKGROUNDS - 1, NUM_BACKGROUNDS),
    ("wall_theme", NUM_WALL_THEMES - 1, 2**31 - 1),
    ("enemy_theme", IMAGE_THEMES[int(EntityType.ENEMY1)] - 1, 10),
    ("tile", int(Tile.SPACE), 2**31 - 1),
    ("enemy_image", int(EntityType.ENEMY2), 1000),
]


@pytest.fixture(scope="module")
def enemy_level(real_states) -> bytes:
    for s in real_states:
        st = parse_state(s)
        if len(st.enemies) and st.options["distribution_mode"] == 1 and st.cur_time == 0:
            return s
    pytest.fail("no hard level with an enemy among the fixture states")


@pytest.mark.parametrize("what,valid,invalid", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_bounds_are_what_the_engine_accepts(enemy_level, tmp_path, what, valid, invalid):
    ok, bad = _crafted(enemy_level, what, valid), _crafted(enemy_level, what, invalid)
    parse_state(ok)
    with pytest.raises(StateError) as err:
        parse_state(bad)
    assert err.value.value == invalid and err.value.valid, err.value
    assert str(invalid) in str(err.value)
    # ground truth, without validation: the bound passes, one beyond it kills procgen
    proc = run_child([ok], tmp_path, raw=True)
    assert proc.returncode == 0, proc.stderr[-1000:]
    proc = run_child([bad], tmp_path, raw=True)
    assert proc.returncode != 0, f"{what}={invalid} did not abort the engine: update the bound"
    # through the package: refused with a Python exception, the process lives
    proc = run_child([bad], tmp_path)
    assert proc.returncode == 0 and proc.stdout.split()[-2:] == ["0", "1"], proc.stderr[-1000:]


def test_error_names_field_value_and_range(enemy_level):
    st = parse_state(enemy_level)
    bad = mutate(enemy_level, st.layout.grid + 4 * (5 * 64 + 7), "i", 0x7FFFFFFF)
    with pytest.raises(StateError, match=r"grid tile at \(x=7, y=5\) is 2147483647, valid: one of"):
        parse_state(bad)
    k = _first(st, EntityType.ENEMY)
    off = st.layout.entities + 124 * k + ENTITY_DTYPE.fields["vx"][1]
    with pytest.raises(StateError, match=rf"entity {k} \(type 5\) vx is nan, valid: -16.0..16.0"):
        parse_state(mutate(enemy_level, off, "f", float("nan")))
    # the setters cannot smuggle a bad value to the engine either: set_state re-validates
    ed = st.editable()
    ed.set_out_of_bounds_object(12345)
    with pytest.raises(StateError, match="out_of_bounds_object is 12345"):
        parse_state(ed.to_bytes())
    env = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0))
    with pytest.raises(StateError, match="out_of_bounds_object"):
        env.set_state([ed.to_bytes()])
    env.close()


def test_edits_the_package_makes_stay_valid(real_states):
    """harmless copies, hidden entities and fast-replay states are within the ranges."""
    from rlvision_widgets.environment.causes import fast_replay_state
    from rlvision_widgets.environment.render import OBJECT_CLASSES, hidden_variant
    from rlvision_widgets.environment.state import harmless_copy, hide_entities

    for s in real_states:
        parse_state(harmless_copy(s))
        parse_state(hide_entities(s, (EntityType.SAW, EntityType.ENEMY)))
        parse_state(fast_replay_state(s))
        for cls in OBJECT_CLASSES:
            v = hidden_variant(parse_state(s), cls)
            if v is not None:
                parse_state(v)


def test_validation_record_is_json_friendly(enemy_level):
    st = parse_state(enemy_level)
    bad = mutate(enemy_level, field_offsets(enemy_level)["background_index"][0], "i", 99)
    with pytest.raises(StateError) as err:
        parse_state(bad)
    e = err.value
    assert (e.field, e.value) == ("background_index", 99)
    json.dumps({"field": e.field, "value": e.value, "valid": e.valid})
    assert st.background_index < NUM_BACKGROUNDS
