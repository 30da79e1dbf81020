"""Typed view of a CoinRun engine state (the bytes of ``ProcgenGym3Env.get_state()``).

The layout follows ``docs/procgen-coinrun-state.md`` (procgen 0.10.7, little-endian). Parsing
validates the version, game name, grid size and trailer, and the range of every field the
engine reads (tiles, entity types, image types and themes, counts, sizes, positions, speeds,
times, options, generator states: see ``docs/threat-model.md``), and raises
:class:`StateError` naming the field, the value and the valid range. States come from untrusted
files, and procgen aborts the whole process on many out-of-range values, so :func:`parse_state`
is the one guard: every ``set_state`` of this package calls it first. Entities and the grid are
numpy views over the bytes (no copies).

>>> from rlvision_widgets.environment import CoinRunEnv, EnvOptions
>>> env = CoinRunEnv(EnvOptions(num_envs=1, rand_seed=0))
>>> st = parse_state(env.get_state()[0])
>>> st.agent.x, st.level_seed, len(st.saws)                      # doctest: +SKIP
(1.5, 1263407424, 1)
>>> ed = st.editable()                                         # writable copy
>>> ed.entities["render_z"][ed.entities["type"] == EntityType.SAW] = 7
>>> env.set_state([ed.to_bytes()])                             # saws no longer drawn

Coordinates are world units (1 unit = 1 tile); ``y = 0`` is the bottom of the level.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

SERIALIZE_VERSION = 0
GAME_NAME = b"coinrun"
GRID_SIZE = 4096
TRAILER = 0xCAFECAFE
#: Render layers the engine draws; any other ``render_z`` hides an entity.
DRAWN_LAYERS = (-1, 0, 1)
HIDDEN_RENDER_Z = 7

OPTION_NAMES = (
    "paint_vel_info",
    "use_generated_assets",
    "use_monochrome_assets",
    "restrict_themes",
    "use_backgrounds",
    "center_agent",
    "debug_mode",
    "distribution_mode",
    "use_sequential_levels",
    "use_easy_jump",
    "plain_assets",
    "physics_mode",
)
_OPTIONS_OFFSET = 15
_HEADER_INTS_OFFSET = 63  # grid_step, level_seed_low, level_seed_high, game_type, game_n
_RAND_GEN_OFFSET = 83  # level_seed_rand_gen: int is_seeded + string


class EntityType(IntEnum):
    """Entity ``type`` ids (and image-only ids used in ``image_type``)."""

    PLAYER = 0
    SAW = 2
    SAW2 = 3
    ENEMY = 5
    ENEMY1 = 6
    ENEMY2 = 7
    PLAYER_JUMP = 9
    PLAYER_RIGHT1 = 12
    PLAYER_RIGHT2 = 13
    CRATE = 20
    TRAIL = 59


class Tile(IntEnum):
    """Grid cell ids."""

    GOAL = 1
    WALL_MID = 15
    WALL_TOP = 16
    LAVA_MID = 17
    LAVA_TOP = 18
    ENEMY_BARRIER = 19
    SPACE = 100


WALL_TILES = (Tile.WALL_MID, Tile.WALL_TOP)
LAVA_TILES = (Tile.LAVA_MID, Tile.LAVA_TOP)

# -- valid ranges: what procgen 0.10.7's CoinRun reads without aborting or hanging ------------
# (docs/threat-model.md; the bounds were read from the engine's sources and the tight ones are
# checked against the engine in tests/environment/test_state_validation.py)
#: Grid cell ids CoinRun produces; any other id aborts the renderer (or indexes past its tables).
VALID_TILES = frozenset(int(t) for t in Tile)
#: Entity ``type`` ids CoinRun produces.
VALID_ENTITY_TYPES = frozenset(
    int(t)
    for t in (
        EntityType.PLAYER,
        EntityType.SAW,
        EntityType.ENEMY,
        EntityType.CRATE,
        EntityType.TRAIL,
    )
)
#: Drawable image ids -> number of themes (sprite variants) the engine has for them; an
#: ``image_theme`` outside ``[0, themes)`` reads past the engine's asset table.
IMAGE_THEMES = {
    int(EntityType.PLAYER): 5,
    int(Tile.GOAL): 1,
    int(EntityType.SAW): 1,
    int(EntityType.SAW2): 1,
    int(EntityType.ENEMY1): 9,
    int(EntityType.ENEMY2): 9,
    int(EntityType.PLAYER_JUMP): 5,
    int(EntityType.PLAYER_RIGHT1): 5,
    int(EntityType.PLAYER_RIGHT2): 5,
    int(Tile.WALL_MID): 6,
    int(Tile.WALL_TOP): 6,
    int(Tile.LAVA_MID): 1,
    int(Tile.LAVA_TOP): 1,
    int(EntityType.CRATE): 4,
    int(EntityType.TRAIL): 1,
}
NUM_WALL_THEMES = 6
#: Background images of this procgen build (``background_index`` indexes them).
NUM_BACKGROUNDS = 62
LEVEL_SIZE = 64
#: Most entities a state may hold (engine states hold up to ~150; each enemy adds a trail per
#: step that lives 9 steps, and ``get_state`` aborts past 1 MiB).
MAX_ENTITIES = 2048
MAX_ENEMIES = 256
#: Bounds on entity geometry (world units): positions, half extents, speeds. They keep the
#: engine's float-to-int conversions defined and its per-step loops short.
POSITION_RANGE = (-64.0, 128.0)
MAX_RADIUS = 16.0
MAX_SPEED = 16.0
MAX_TIME = 2**31 - 2**24  # cur_time / life_time: room for 16M more steps before overflow
_SPECIAL_OPTIONS = ("use_generated_assets", "debug_mode")
_RNG_FIELDS = 625  # mt19937 text: 624 state words and the position, space separated

#: One serialized entity: 31 little-endian 4-byte fields, 124 bytes.
ENTITY_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("vx", "<f4"),
        ("vy", "<f4"),
        ("rx", "<f4"),
        ("ry", "<f4"),
        ("type", "<i4"),
        ("image_type", "<i4"),
        ("image_theme", "<i4"),
        ("render_z", "<i4"),
        ("will_erase", "<i4"),
        ("collides_with_entities", "<i4"),
        ("collision_margin", "<f4"),
        ("rotation", "<f4"),
        ("vrot", "<f4"),
        ("is_reflected", "<i4"),
        ("fire_time", "<i4"),
        ("spawn_time", "<i4"),
        ("life_time", "<i4"),
        ("expire_time", "<i4"),
        ("use_abs_coords", "<i4"),
        ("friction", "<f4"),
        ("smart_step", "<i4"),
        ("avoids_collisions", "<i4"),
        ("auto_erase", "<i4"),
        ("alpha", "<f4"),
        ("health", "<f4"),
        ("theta", "<f4"),
        ("grow_rate", "<f4"),
        ("alpha_decay", "<f4"),
        ("climber_spawn_x", "<f4"),
    ]
)
assert ENTITY_DTYPE.itemsize == 124


class StateError(ValueError):
    """The bytes are not a CoinRun state this package can hand to the engine: the layout does
    not match, or a field the engine reads is outside its valid range (``field``, ``value`` and
    ``valid`` then name it; they are None for layout errors)."""

    def __init__(
        self, message: str, field: str | None = None, value: Any = None, valid: str | None = None
    ):
        super().__init__(message)
        self.field, self.value, self.valid = field, value, valid


@dataclass(frozen=True)
class StateLayout:
    """Byte offsets found while parsing one state (they depend on variable-length fields)."""

    reward: int
    action: int
    timeout: int
    level_seed: int
    prev_level_seed: int
    cur_time: int
    num_entities: int
    entities: int
    view: int  # unit, view_dim, x_off, y_off, visibility, min_visibility (6 floats)
    main_size: int  # main_width, main_height, out_of_bounds_object
    grid_header: int  # w, h, n
    grid: int
    coinrun: int  # last_agent_y, wall_theme, has_support, facing_right, is_on_crate, ...
    trailer: int


@dataclass(frozen=True)
class Agent:
    """The player: centre (x, y), velocity (vx, vy), half extents (rx, ry), in world units."""

    x: float
    y: float
    vx: float
    vy: float
    rx: float
    ry: float
    facing_right: bool
    has_support: bool
    is_on_crate: bool


class Grid:
    """The level grid, ``data[y, x]`` with ``y = 0`` at the bottom (a view over the state)."""

    def __init__(self, data: np.ndarray):
        self.data = data

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    def tile(self, x: int, y: int, out_of_bounds: int = int(Tile.WALL_MID)) -> int:
        """Cell id at integer (x, y); cells outside the grid read as ``out_of_bounds``."""
        if 0 <= x < self.width and 0 <= y < self.height:
            return int(self.data[y, x])
        return out_of_bounds

    def cells(self, *tiles: int) -> np.ndarray:
        """(k, 2) int array of (x, y) of cells whose id is one of ``tiles``."""
        ys, xs = np.nonzero(np.isin(self.data, np.asarray(tiles, dtype=np.int32)))
        return np.stack([xs, ys], axis=1).astype(np.int32)

    def __repr__(self) -> str:
        return f"Grid({self.width}x{self.height})"


_F32_MAX = float(np.finfo(np.float32).max)  # [-_F32_MAX, _F32_MAX]: finite, NaN fails
_TILE_OK = np.zeros(103, dtype=bool)  # index: tile id + 1, clipped to [-1, 101]
_TILE_OK[np.array(sorted(VALID_TILES)) + 1] = True
_TILES_TEXT = "one of " + ", ".join(f"{int(t)} ({t.name})" for t in Tile)


def _invalid(field: str, value: Any, valid: str) -> StateError:
    return StateError(
        f"not a valid CoinRun state: {field} is {value!r}, valid: {valid}. Pass bytes "
        "returned by CoinRunEnv.get_state() (procgen 0.10.7), unmodified or edited with the "
        "GameState setters within these ranges.",
        field=field,
        value=value,
        valid=valid,
    )


def _range_text(lo: float, hi: float) -> str:
    if lo == -_F32_MAX and hi == _F32_MAX:
        return "a finite number"
    if lo == hi:
        return f"{lo}"
    return f"{lo}..{hi}" + (" (finite)" if isinstance(lo, float) else "")


#: Entity fields: (lo, hi); a comparison with NaN fails, so floats must also be finite.
_ENTITY_RANGES: dict[str, tuple[float, float]] = {
    "x": POSITION_RANGE,
    "y": POSITION_RANGE,
    "vx": (-MAX_SPEED, MAX_SPEED),
    "vy": (-MAX_SPEED, MAX_SPEED),
    "rx": (0.0, MAX_RADIUS),
    "ry": (0.0, MAX_RADIUS),
    "type": (0, 63),  # membership checked separately
    "image_type": (0, 63),  # membership checked separately
    "image_theme": (0, 9),  # the engine's limit; per image (IMAGE_THEMES) checked separately
    "render_z": (-(2**31), 2**31 - 1),  # any layer: only -1, 0, 1 are drawn
    "will_erase": (0, 1),
    "collides_with_entities": (0, 1),
    "collision_margin": (-1e6, 1e6),
    "rotation": (-1e6, 1e6),
    "vrot": (-1e3, 1e3),
    "is_reflected": (0, 1),
    "fire_time": (-1, MAX_TIME),
    "spawn_time": (-1, MAX_TIME),
    "life_time": (0, MAX_TIME),
    "expire_time": (-1, MAX_TIME),
    "use_abs_coords": (0, 1),
    "friction": (0.0, 1.0),
    "smart_step": (0, 1),
    "avoids_collisions": (0, 1),
    "auto_erase": (0, 1),
    "alpha": (0.0, 1.0),
    "health": (-_F32_MAX, _F32_MAX),
    "theta": (-_F32_MAX, _F32_MAX),
    "grow_rate": (0.0, 2.0),
    "alpha_decay": (0.0, 1.0),
    "climber_spawn_x": (-_F32_MAX, _F32_MAX),
}
assert tuple(_ENTITY_RANGES) == ENTITY_DTYPE.names
_IS_FLOAT = np.array([ENTITY_DTYPE[n].kind == "f" for n in ENTITY_DTYPE.names])
_LO = np.array([r[0] for r in _ENTITY_RANGES.values()], dtype=np.float64)
_HI = np.array([r[1] for r in _ENTITY_RANGES.values()], dtype=np.float64)
_TYPE_COL, _GROW_COL = ENTITY_DTYPE.names.index("type"), ENTITY_DTYPE.names.index("grow_rate")
_TYPE_OK = np.zeros(64, dtype=bool)
_TYPE_OK[sorted(VALID_ENTITY_TYPES)] = True
_THEME_LIMIT = np.zeros(64, dtype=np.int32)  # 0: not a drawable image id
for _img, _n in IMAGE_THEMES.items():
    _THEME_LIMIT[_img] = _n


def _check_entities(ents: np.ndarray) -> None:
    """Every entity field the engine reads, in a few vectorised passes; the first offender
    is named."""
    n = len(ents)
    if n > MAX_ENTITIES:
        raise _invalid("entity count", n, f"1..{MAX_ENTITIES}")
    raw = ents.view(np.uint8).reshape(n, ENTITY_DTYPE.itemsize)
    i32 = raw.view("<i4")
    values = np.where(_IS_FLOAT, raw.view("<f4"), i32)  # float64, exact for both
    ok = (values >= _LO) & (values <= _HI)  # NaN fails
    if not ok.all():
        k, c = (int(i[0]) for i in np.nonzero(~ok))
        name = ENTITY_DTYPE.names[c]
        raise _invalid(
            f"entity {k} (type {int(i32[k, _TYPE_COL])}) {name}",
            ents[name][k].item(),
            _range_text(*_ENTITY_RANGES[name]),
        )
    types, img, theme = i32[:, 6], i32[:, 7], i32[:, 8]  # in 0..63 / 0..9 here
    if not _TYPE_OK[types].all():
        k = int(np.flatnonzero(~_TYPE_OK[types])[0])
        valid = "one of " + ", ".join(map(str, sorted(VALID_ENTITY_TYPES)))
        raise _invalid(f"entity {k} type", int(types[k]), valid)
    counts = np.bincount(types, minlength=64)
    if counts[EntityType.PLAYER] != 1:
        raise _invalid("number of PLAYER entities", int(counts[EntityType.PLAYER]), "exactly 1")
    if counts[EntityType.ENEMY] > MAX_ENEMIES:
        raise _invalid(
            "number of ENEMY entities", int(counts[EntityType.ENEMY]), f"0..{MAX_ENEMIES}"
        )
    limit = _THEME_LIMIT[img]
    bad = theme >= limit
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        if limit[k] == 0:
            raise _invalid(
                f"entity {k} (type {int(types[k])}) image_type",
                int(img[k]),
                "one of " + ", ".join(map(str, sorted(IMAGE_THEMES))),
            )
        raise _invalid(
            f"entity {k} (type {int(types[k])}) image_theme",
            int(theme[k]),
            f"0..{int(limit[k]) - 1} for image_type {int(img[k])}",
        )
    # growing entities (trails) must stop growing soon: they expire, and their half extents
    # at expiry stay within MAX_RADIUS
    grows = values[:, _GROW_COL] > 1.0
    if grows.any():
        g = ents[grows]
        steps = g["expire_time"].astype(np.float64) - g["life_time"] + 1
        final = np.maximum(g["rx"], g["ry"]).astype(np.float64) * np.exp(
            np.log(g["grow_rate"].astype(np.float64)) * np.clip(steps, 0, None)
        )
        bad = (g["expire_time"] < 1) | (g["expire_time"] > 1024) | (final > MAX_RADIUS)
        if bad.any():
            k = int(np.flatnonzero(grows)[np.flatnonzero(bad)[0]])
            raise _invalid(
                f"entity {k} (type {int(types[k])}) grow_rate",
                float(ents["grow_rate"][k]),
                f"<= 1, or > 1 only with 1 <= expire_time <= 1024 and a half extent that stays "
                f"<= {MAX_RADIUS} until it expires",
            )


def _fail(what: str) -> StateError:
    return StateError(
        f"not a valid CoinRun state: {what}. Pass bytes returned by "
        "CoinRunEnv.get_state() (procgen 0.10.7, SERIALIZE_VERSION 0) unmodified."
    )


class GameState:
    """Parsed CoinRun state. Scalar fields are plain attributes; ``entities`` is a structured
    numpy view (dtype :data:`ENTITY_DTYPE`) and ``grid`` a :class:`Grid` view over the bytes.

    States parsed from ``bytes`` are read-only; :meth:`editable` returns a writable copy whose
    views and setters patch the bytes in place, and :meth:`to_bytes` serializes it back.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> st = parse_state(CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0])
    >>> st.cur_time, st.entities.dtype == ENTITY_DTYPE, st.writable
    (0, True, False)
    >>> st.hazard_kinds <= {"saw", "enemy", "lava"}
    True
    >>> ed = st.editable().set_timeout(100)           # writable copy, patched in place
    >>> parse_state(ed.to_bytes()).timeout
    100
    """

    __slots__ = (
        "_buf",
        "layout",
        "options",
        "level_seed_low",
        "level_seed_high",
        "reward",
        "done",
        "level_complete",
        "action",
        "timeout",
        "level_seed",
        "prev_level_seed",
        "episodes_remaining",
        "episode_done",
        "cur_time",
        "entities",
        "grid",
        "visibility",
        "main_width",
        "main_height",
        "out_of_bounds_object",
        "background_index",
        "wall_theme",
        "has_support",
        "facing_right",
        "is_on_crate",
        "last_agent_y",
    )

    def __init__(self, data: bytes | bytearray | memoryview):
        if isinstance(data, memoryview):
            data = bytes(data)
        if not isinstance(data, (bytes, bytearray)):
            raise StateError(f"a CoinRun state must be bytes, got {type(data).__name__}")
        self._buf = data
        self._parse()

    # -- parsing -----------------------------------------------------------------------------
    def _parse(self) -> None:
        b = self._buf
        n = len(b)
        if n < 200:
            raise _fail(f"only {n} bytes (a CoinRun state is ~37-50 kB)")
        unpack = struct.unpack_from
        version, name_len = unpack("<ii", b, 0)
        if version != SERIALIZE_VERSION:
            raise _fail(f"SERIALIZE_VERSION is {version}, expected {SERIALIZE_VERSION}")
        name = bytes(b[8 : 8 + max(0, min(name_len, 64))])
        if name_len != len(GAME_NAME) or name != GAME_NAME:
            raise _fail(f"game name is {name!r} (length {name_len}), expected 'coinrun'")
        opts = unpack("<12i", b, _OPTIONS_OFFSET)
        self.options = dict(zip(OPTION_NAMES, opts))
        f: dict[str, Any] = {}  # every other scalar the engine reads, for _check_fields
        (f["grid_step"], self.level_seed_low, self.level_seed_high, f["game_type"], f["game_n"]) = (
            unpack("<5i", b, _HEADER_INTS_OFFSET)
        )
        off = _RAND_GEN_OFFSET
        rngs = {}
        for what in ("level_seed_rand_gen", "rand_gen"):
            if off + 8 > n:
                raise _fail(f"truncated inside {what}")
            seeded, slen = unpack("<ii", b, off)
            if not 0 <= slen <= n - off - 8:
                raise _fail(f"{what} string length {slen} is out of range")
            rngs[what] = (seeded, off + 8, slen)
            off += 8 + slen
        if off + 72 > n:
            raise _fail("truncated after the random generators")
        reward_off = off
        (
            self.reward,
            self.done,
            self.level_complete,
            self.action,
            self.timeout,
            self.level_seed,
            self.prev_level_seed,
            self.episodes_remaining,
            self.episode_done,
        ) = unpack("<f8i", b, off)
        off += 36
        (f["last_reward_timer"], f["last_reward"], f["default_action"], _) = unpack(
            "<ifii", b, off
        )  # _: fixed_asset_seed (any int: it seeds generated assets)
        off += 16
        cur_time_off = off
        self.cur_time, f["is_waiting_for_step"] = unpack("<ii", b, off)
        off += 8
        grid_size, num = unpack("<ii", b, off)
        if grid_size != GRID_SIZE:
            raise _fail(f"grid_size is {grid_size}, expected {GRID_SIZE}")
        nent_off = off + 4
        off += 8
        if not 1 <= num <= (n - off) // ENTITY_DTYPE.itemsize:
            raise _fail(f"entity count {num} does not fit in {n} bytes")
        ent_off = off
        off += num * ENTITY_DTYPE.itemsize
        if off + 88 > n:
            raise _fail("truncated before asset_rand_gen")
        (
            f["use_procgen_background"],
            self.background_index,
            f["bg_tile_ratio"],
            f["bg_pct_x"],
            f["char_dim"],
            f["last_move_action"],
            f["move_action"],
            f["special_action"],
            f["mixrate"],
            f["maxspeed"],
            f["max_jump"],
            f["action_vx"],
            f["action_vy"],
            f["action_vrot"],
            f["center_x"],
            f["center_y"],
            f["random_agent_start"],
            f["has_useful_vel_info"],
            f["step_rand_int"],
        ) = unpack("<iifffiiiffffffffiii", b, off)
        off += 76
        seeded, slen = unpack("<ii", b, off)
        if not 0 <= slen <= n - off - 8:
            raise _fail(f"asset_rand_gen string length {slen} is out of range")
        rngs["asset_rand_gen"] = (seeded, off + 8, slen)
        off += 8 + slen
        main_off = off
        if off + 12 + 24 + 12 > n:
            raise _fail("truncated before the grid")
        self.main_width, self.main_height, self.out_of_bounds_object = unpack("<3i", b, off)
        off += 12
        view_off = off
        (
            f["unit"],
            f["view_dim"],
            f["x_off"],
            f["y_off"],
            self.visibility,
            f["min_visibility"],
        ) = unpack("<6f", b, off)
        off += 24
        grid_hdr = off
        w, h, cells = unpack("<3i", b, off)
        off += 12
        if w <= 0 or h <= 0 or w * h != cells or cells != grid_size:
            raise _fail(f"grid header w={w}, h={h}, n={cells} does not match grid_size {grid_size}")
        grid_off = off
        off += 4 * cells
        coin_off = off
        off += 28
        if off + 4 != n:
            raise _fail(f"length {n} does not end with the trailer where expected (byte {off})")
        trailer = unpack("<I", b, off)[0]
        if trailer != TRAILER:
            raise _fail(
                f"trailer is {trailer:#010x}, expected {TRAILER:#010x} "
                "(truncated or corrupted bytes)"
            )
        (
            self.last_agent_y,
            self.wall_theme,
            has_support,
            facing_right,
            is_on_crate,
            f["gravity"],
            f["air_control"],
        ) = unpack("<fiiiiff", b, coin_off)
        f.update(has_support=has_support, facing_right=facing_right, is_on_crate=is_on_crate)
        self.has_support, self.facing_right, self.is_on_crate = (
            bool(has_support),
            bool(facing_right),
            bool(is_on_crate),
        )
        self.entities = np.frombuffer(b, ENTITY_DTYPE, num, ent_off)
        self.grid = Grid(np.frombuffer(b, "<i4", cells, grid_off).reshape(h, w))
        if not (self.entities["type"] == EntityType.PLAYER).any():
            raise _fail("no PLAYER entity")
        self.layout = StateLayout(
            reward=reward_off,
            action=reward_off + 12,
            timeout=reward_off + 16,
            level_seed=reward_off + 20,
            prev_level_seed=reward_off + 24,
            cur_time=cur_time_off,
            num_entities=nent_off,
            entities=ent_off,
            view=view_off,
            main_size=main_off,
            grid_header=grid_hdr,
            grid=grid_off,
            coinrun=coin_off,
            trailer=off,
        )
        self._check_fields(f, rngs)

    # -- validation: every field the engine reads, against what it accepts ------------------
    def _check_fields(self, f: dict[str, Any], rngs: dict[str, tuple[int, int, int]]) -> None:
        """Raise :class:`StateError` naming the first field outside its valid range."""
        o = self.options
        F = _F32_MAX
        rules: list[tuple[str, Any, float, float]] = [
            *((f"option {k}", v, 0, 1) for k, v in o.items() if k not in _SPECIAL_OPTIONS),
            ("option use_generated_assets", o["use_generated_assets"], 0, 0),
            ("option debug_mode", o["debug_mode"], 0, 15),
            ("grid_step", f["grid_step"], 0, 0),
            ("game_type", f["game_type"], 0, 0),
            ("game_n", f["game_n"], 0, 2**31 - 1),
            ("level_seed_low", self.level_seed_low, 0, 2**31 - 2),
            ("level_seed_high", self.level_seed_high, self.level_seed_low + 1, 2**31 - 1),
            *(
                (f"{k}.is_seeded", v[0], 0 if k == "asset_rand_gen" else 1, 1)
                for k, v in rngs.items()
            ),
            ("reward", self.reward, -F, F),
            ("done", self.done, 0, 1),
            ("level_complete", self.level_complete, 0, 1),
            ("action", self.action, 0, 14),
            ("timeout", self.timeout, 1, 2**31 - 1),
            ("episodes_remaining", self.episodes_remaining, 0, 1),
            ("episode_done", self.episode_done, 0, 1),
            ("last_reward_timer", f["last_reward_timer"], 0, 10),
            ("last_reward", f["last_reward"], -F, F),
            ("default_action", f["default_action"], 0, 14),
            ("cur_time", self.cur_time, 0, MAX_TIME),
            ("is_waiting_for_step", f["is_waiting_for_step"], 0, 0),
            ("use_procgen_background", f["use_procgen_background"], 0, 0),
            ("background_index", self.background_index, 0, NUM_BACKGROUNDS - 1),
            ("bg_tile_ratio", f["bg_tile_ratio"], 0.0, F),
            ("bg_pct_x", f["bg_pct_x"], 0.0, 1.0),
            ("char_dim", f["char_dim"], -F, F),
            ("last_move_action", f["last_move_action"], 0, 8),
            ("move_action", f["move_action"], 0, 8),
            ("special_action", f["special_action"], 0, 6),
            ("mixrate", f["mixrate"], 0.0, 1.0),
            ("maxspeed", f["maxspeed"], 1e-3, MAX_SPEED),
            ("max_jump", f["max_jump"], 1e-3, MAX_SPEED),
            ("action_vx", f["action_vx"], -1.0, 1.0),
            ("action_vy", f["action_vy"], -1.0, 1.0),
            ("action_vrot", f["action_vrot"], -1.0, 1.0),
            # recomputed before drawing; only finite values are accepted
            *((k, f[k], -F, F) for k in ("center_x", "center_y", "unit", "view_dim")),
            ("x_off", f["x_off"], -F, F),
            ("y_off", f["y_off"], -F, F),
            ("random_agent_start", f["random_agent_start"], 0, 1),
            ("has_useful_vel_info", f["has_useful_vel_info"], 0, 1),
            ("step_rand_int", f["step_rand_int"], 0, 999_999),
            ("main_width", self.main_width, LEVEL_SIZE, LEVEL_SIZE),
            ("main_height", self.main_height, LEVEL_SIZE, LEVEL_SIZE),
            ("visibility", self.visibility, 1.0, 64.0),
            ("min_visibility", f["min_visibility"], 0.0, 64.0),
            ("grid width", self.grid.width, LEVEL_SIZE, LEVEL_SIZE),
            ("last_agent_y", self.last_agent_y, *POSITION_RANGE),
            ("wall_theme", self.wall_theme, 0, NUM_WALL_THEMES - 1),
            ("has_support", f["has_support"], 0, 1),
            ("facing_right", f["facing_right"], 0, 1),
            ("is_on_crate", f["is_on_crate"], 0, 1),
            ("gravity", f["gravity"], -MAX_SPEED, MAX_SPEED),
            ("air_control", f["air_control"], 0.0, 1.0),
        ]
        for name, value, lo, hi in rules:
            if not lo <= value <= hi:  # NaN fails too
                raise _invalid(name, value, _range_text(lo, hi))
        if self.out_of_bounds_object not in VALID_TILES:
            raise _invalid("out_of_bounds_object", self.out_of_bounds_object, _TILES_TEXT)
        b = self._buf
        for what, (_, start, length) in rngs.items():
            text = bytes(b[start : start + length])
            if (
                text.count(b" ") != _RNG_FIELDS - 1
                or len(text.translate(None, b"0123456789")) != _RNG_FIELDS - 1
                or b"  " in text
                or text[:1] == b" "
                or text[-1:] == b" "
                or len(text) > _RNG_FIELDS * 20
            ):
                raise _invalid(
                    f"{what} generator state",
                    text[:24].decode("latin-1") + "...",
                    f"{_RNG_FIELDS} space-separated decimal numbers (mt19937 text)",
                )
        grid = self.grid.data
        if not _TILE_OK[np.clip(grid, -1, 101) + 1].all():
            bad = ~_TILE_OK[np.clip(grid, -1, 101) + 1]
            y, x = (int(i[0]) for i in np.nonzero(bad))
            raise _invalid(f"grid tile at (x={x}, y={y})", int(grid[y, x]), _TILES_TEXT)
        _check_entities(self.entities)

    # -- typed accessors -----------------------------------------------------------------------
    @property
    def writable(self) -> bool:
        return isinstance(self._buf, bytearray)

    @property
    def agent_index(self) -> int:
        """Index of the PLAYER entity (0 in every state the engine produces)."""
        types = self.entities["type"]
        return 0 if types[0] == EntityType.PLAYER else int(np.flatnonzero(types == 0)[-1])

    @property
    def agent(self) -> Agent:
        e = self.entities[self.agent_index]
        return Agent(
            float(e["x"]),
            float(e["y"]),
            float(e["vx"]),
            float(e["vy"]),
            float(e["rx"]),
            float(e["ry"]),
            self.facing_right,
            self.has_support,
            self.is_on_crate,
        )

    def of_type(self, *types: int) -> np.ndarray:
        """Entities whose ``type`` is one of ``types`` (a copy, in engine order)."""
        return self.entities[np.isin(self.entities["type"], types)]

    @property
    def saws(self) -> np.ndarray:
        return self.of_type(EntityType.SAW)

    @property
    def enemies(self) -> np.ndarray:
        return self.of_type(EntityType.ENEMY)

    @property
    def enemy_directions(self) -> np.ndarray:
        """Per enemy (engine order) -1 if it moves left (vx < 0), +1 otherwise."""
        return np.where(self.enemies["vx"] < 0, -1, 1).astype(np.int8)

    @property
    def crates(self) -> np.ndarray:
        return self.of_type(EntityType.CRATE)

    @property
    def coins(self) -> np.ndarray:
        """(k, 2) cell (x, y) of GOAL tiles (the coin; usually exactly one)."""
        return self.grid.cells(Tile.GOAL)

    @property
    def lava(self) -> np.ndarray:
        return self.grid.cells(*LAVA_TILES)

    @property
    def walls(self) -> np.ndarray:
        return self.grid.cells(*WALL_TILES)

    @property
    def hazard_kinds(self) -> frozenset[str]:
        """Which lethal things the level holds: subset of {"saw", "enemy", "lava"}."""
        types = self.entities["type"]
        kinds = set()
        if (types == EntityType.SAW).any():
            kinds.add("saw")
        if (types == EntityType.ENEMY).any():
            kinds.add("enemy")
        if np.isin(self.grid.data, LAVA_TILES).any():
            kinds.add("lava")
        return frozenset(kinds)

    def summary(self) -> dict:
        """Small JSON-able description (for logs and widgets)."""
        a = self.agent
        return {
            "level_seed": self.level_seed,
            "cur_time": self.cur_time,
            "timeout": self.timeout,
            "agent": [a.x, a.y, a.vx, a.vy],
            "saws": len(self.saws),
            "enemies": len(self.enemies),
            "crates": len(self.crates),
            "coins": self.coins.tolist(),
            "lava_tiles": len(self.lava),
        }

    def __repr__(self) -> str:
        a = self.agent
        return (
            f"GameState(level_seed={self.level_seed}, cur_time={self.cur_time}, "
            f"agent=({a.x:.2f}, {a.y:.2f}), saws={len(self.saws)}, "
            f"enemies={len(self.enemies)}, crates={len(self.crates)}, "
            f"lava_tiles={len(self.lava)})"
        )

    # -- editing -------------------------------------------------------------------------------
    def editable(self) -> GameState:
        """A writable copy: modify ``entities`` / ``grid.data`` in place or use the setters."""
        return GameState(bytearray(self._buf))

    def to_bytes(self) -> bytes:
        return bytes(self._buf)

    def _require_writable(self) -> bytearray:
        if not isinstance(self._buf, bytearray):
            raise TypeError("this GameState is read-only; call .editable() first")
        return self._buf

    def _pack(self, fmt: str, offset: int, value) -> None:
        struct.pack_into(fmt, self._require_writable(), offset, value)

    def set_timeout(self, timeout: int) -> GameState:
        self._pack("<i", self.layout.timeout, int(timeout))
        self.timeout = int(timeout)
        return self

    def set_cur_time(self, cur_time: int) -> GameState:
        self._pack("<i", self.layout.cur_time, int(cur_time))
        self.cur_time = int(cur_time)
        return self

    def set_option(self, name: str, value: int) -> GameState:
        """Overwrite one engine option stored in the state (e.g. ``paint_vel_info``)."""
        if name not in OPTION_NAMES:
            raise ValueError(f"unknown engine option {name!r}; one of {OPTION_NAMES}")
        if name == "use_generated_assets" and value:
            raise ValueError(
                "use_generated_assets cannot be enabled: get_state would abort the process"
            )
        self._pack("<i", _OPTIONS_OFFSET + 4 * OPTION_NAMES.index(name), int(value))
        self.options[name] = int(value)
        return self

    def set_visibility(self, visibility: float) -> GameState:
        """Tiles visible across the view (13 in CoinRun). Rendering only."""
        self._pack("<f", self.layout.view + 16, float(visibility))
        self.visibility = float(visibility)
        return self

    def set_out_of_bounds_object(self, tile: int) -> GameState:
        """What cells outside the grid count as (WALL_MID in CoinRun)."""
        self._pack("<i", self.layout.main_size + 8, int(tile))
        self.out_of_bounds_object = int(tile)
        return self

    def set_entity_field(
        self, mask: np.ndarray | Iterable[int] | int, field: str, value
    ) -> GameState:
        """Set ``field`` (e.g. ``"render_z"``, ``"collision_margin"``) of the selected entities."""
        self._require_writable()
        if field not in ENTITY_DTYPE.names:
            raise ValueError(f"unknown entity field {field!r}; one of {ENTITY_DTYPE.names}")
        self.entities[field][mask] = value
        return self

    def set_entities_of_type(self, types: int | Iterable[int], field: str, value) -> GameState:
        types = (types,) if isinstance(types, (int, np.integer)) else tuple(types)
        return self.set_entity_field(np.isin(self.entities["type"], types), field, value)

    def replace_tiles(self, tiles: int | Iterable[int], new: int) -> GameState:
        """Replace every cell whose id is in ``tiles`` by ``new``."""
        self._require_writable()
        tiles = (tiles,) if isinstance(tiles, (int, np.integer)) else tuple(tiles)
        d = self.grid.data
        d[np.isin(d, tiles)] = int(new)
        return self

    def set_tile(self, x: int, y: int, tile: int) -> GameState:
        self._require_writable()
        if not (0 <= x < self.grid.width and 0 <= y < self.grid.height):
            raise IndexError(
                f"cell ({x}, {y}) is outside the {self.grid.width}x{self.grid.height} grid"
            )
        self.grid.data[y, x] = int(tile)
        return self


def parse_state(data: bytes | bytearray | memoryview) -> GameState:
    """Parse and validate one state; raises :class:`StateError` on a layout mismatch or a
    field outside what the engine accepts (call it before handing bytes to the engine).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> st = parse_state(CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0])
    >>> st.cur_time, len(st.coins)
    (0, 1)
    >>> parse_state(b"not a state")           # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StateError: not a valid CoinRun state: only 11 bytes (a CoinRun state is ~37-50 kB)...
    >>> bad = st.editable().set_tile(3, 2, 0x7FFFFFFF).to_bytes()   # procgen would abort
    >>> parse_state(bad)                      # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StateError: not a valid CoinRun state: grid tile at (x=3, y=2) is 2147483647, valid: ...
    """
    return GameState(data)


# -- byte-level helpers used by the environment layer -----------------------------------------
def hide_entities(
    state: bytes, types: Iterable[int] = (EntityType.SAW,), render_z: int = HIDDEN_RENDER_Z
) -> bytes:
    """Copy of ``state`` where entities of ``types`` are not drawn (render_z outside -1..1).
    Dynamics are unchanged: ``render_z`` is only read by the renderer.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]   # 2 saws, 5 enemies
    >>> hidden = parse_state(hide_entities(state, (EntityType.SAW, EntityType.ENEMY)))
    >>> hidden.of_type(EntityType.SAW, EntityType.ENEMY)["render_z"].tolist()
    [7, 7, 7, 7, 7, 7, 7]
    """
    ed = parse_state(state).editable()
    ed.set_entities_of_type(tuple(types), "render_z", render_z)
    return ed.to_bytes()


def harmless_copy(state: bytes | GameState) -> bytes:
    """Copy of ``state`` in which nothing can end the episode but the coin: saws and enemies
    get ``collision_margin = -1000``, lava tiles become SPACE and the timeout 2**30. Motion is
    unchanged (used to find what killed the agent).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=10).get_state()[0]  # 3 saws, 12 lava tiles
    >>> st = parse_state(harmless_copy(state))
    >>> st.timeout == 2 ** 30, len(parse_state(state).lava), len(st.lava)
    (True, 12, 0)
    >>> st.saws["collision_margin"].tolist()
    [-1000.0, -1000.0, -1000.0]
    """
    st = state if isinstance(state, GameState) else parse_state(state)
    ed = st.editable()
    ed.set_entities_of_type((EntityType.SAW, EntityType.ENEMY), "collision_margin", -1000.0)
    ed.replace_tiles(LAVA_TILES, Tile.SPACE)
    ed.set_timeout(2**30)
    return ed.to_bytes()
