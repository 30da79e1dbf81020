"""Counterfactual game states: edit a CoinRun frame's engine state, not the network.

From any frame's state (raw bytes, or a recorded ``Trajectories`` and ``(env, step)``), hide,
remove or move an object (agent, saw, enemy, crate, coin, lava tile), add a saw, enemy, crate
or coin at a free position, or set the agent's position and velocity. Every edit returns new
state bytes and is validated by :func:`~rlvision_widgets.environment.state.parse_state`, the
check that guards loaded files, so an edit the engine could not take raises
:class:`~rlvision_widgets.environment.state.StateError` naming the field instead of reaching
the engine. Positions are world units (1 unit = 1 tile, ``y = 0`` at the bottom); an object's
position is its centre, and a tile's centre is its cell plus 0.5 (the engine puts generated
saws, enemies and crates at cell centres too). See ``docs/counterfactuals.md``.

>>> from rlvision_widgets.environment import CoinRunEnv
>>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]       # 2 saws, 5 enemies
>>> saw = next(o for o in objects(state) if o.kind == "saw")
>>> hidden = hide_object(state, saw.ref)                  # still kills, not drawn
>>> [o.hidden for o in objects(hidden) if o.ref == saw.ref]
[True]
>>> cf = Counterfactual(state).remove(saw.ref).set_agent(vx=0.25)
>>> len(cf.objects()) == len(objects(state)) - 1, cf.edits[-1]
(True, 'set agent vx=0.25')
>>> obs64, frame512 = cf.frames()                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .render import Renderer
from .state import (
    ENTITY_DTYPE,
    HIDDEN_RENDER_Z,
    MAX_ENTITIES,
    EntityType,
    GameState,
    StateError,
    Tile,
    parse_state,
)

__all__ = [
    "ADDABLE_KINDS",
    "OBJECT_KINDS",
    "Counterfactual",
    "CounterfactualError",
    "GameObject",
    "add_object",
    "frame_state",
    "hide_object",
    "move_object",
    "new_entity",
    "objects",
    "remove_object",
    "render_state",
    "set_agent",
    "show_object",
]

#: Kinds :func:`objects` lists (entities first, then tiles); TRAIL entities (an enemy's fading
#: footprints) are handled with their enemy, never listed.
OBJECT_KINDS = ("agent", "saw", "enemy", "crate", "coin", "lava")
#: Kinds :func:`add_object` can place.
ADDABLE_KINDS = ("saw", "enemy", "crate", "coin")
_ENTITY_KIND = {
    int(EntityType.PLAYER): "agent",
    int(EntityType.SAW): "saw",
    int(EntityType.ENEMY): "enemy",
    int(EntityType.CRATE): "crate",
}
_KIND_TYPE = {v: k for k, v in _ENTITY_KIND.items()}
_TILE_KIND = {
    int(Tile.GOAL): "coin",
    int(Tile.LAVA_MID): "lava",
    int(Tile.LAVA_TOP): "lava",
}
#: render_z the engine gives each entity type (agent and enemies are drawn above the rest)
_DEFAULT_RENDER_Z = {int(EntityType.PLAYER): 1, int(EntityType.ENEMY): 1}
#: cells an entity may overlap (an enemy turns at ENEMY_BARRIER, which is never drawn)
_FREE_FOR_ENTITY = (int(Tile.SPACE), int(Tile.ENEMY_BARRIER))
_EPS = 0.001  # the engine shrinks boxes by this much when it looks up the cells under them
ENEMY_SPEED = 0.15  # create_enemy: vx = +-0.15
NUM_ENEMY_THEMES = 9
NUM_CRATE_THEMES = 4
_TRAIL_LIFE = 9  # trails expire after 8 steps (life_time > expire_time) and rise 0.01 per step

Ref = int | tuple[int, int]


class CounterfactualError(ValueError):
    """An edit that cannot be made: unknown object, position not free or outside the level,
    unsupported kind. The message says what and how to fix it.

    >>> raise CounterfactualError("no object 99")       # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    CounterfactualError: no object 99
    """


@dataclass(frozen=True)
class GameObject:
    """One object of a frame. ``ref``: entity index (engine order) for entities, ``(x, y)``
    cell for tiles (coin, lava): what the edit functions take. ``x, y``: centre; ``rx, ry``:
    half extents; ``vx, vy``: velocity (world units per step; 0 for tiles). ``hidden``: not
    drawn (``render_z`` outside the drawn layers) but still part of the game.

    >>> GameObject("coin", (12, 3), 12.5, 3.5, 0.5, 0.5).is_tile
    True
    """

    kind: str
    ref: Ref
    x: float
    y: float
    rx: float
    ry: float
    vx: float = 0.0
    vy: float = 0.0
    hidden: bool = False

    @property
    def is_tile(self) -> bool:
        return isinstance(self.ref, tuple)

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in world units."""
        return (self.x - self.rx, self.y - self.ry, self.x + self.rx, self.y + self.ry)


# -- reading ---------------------------------------------------------------------------------
def _parse(state: bytes | bytearray | GameState) -> GameState:
    if isinstance(state, GameState):
        return state
    if isinstance(state, Counterfactual):
        return parse_state(state.state)
    return parse_state(state)


def frame_state(source: Any, env: int | None = None, step: int | None = None) -> bytes:
    """Engine state of a frame: ``source`` is state bytes (validated, returned as bytes), a
    :class:`~rlvision_widgets.environment.state.GameState`, or recorded trajectories (any
    object with ``state_at(env, step)``, e.g. ``Trajectories``) with ``env`` and ``step``.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> frame_state(state) == state
    True
    >>> frame_state(traj, env=0, step=10)                    # doctest: +SKIP
    """
    if hasattr(source, "state_at"):
        if env is None or step is None:
            raise CounterfactualError(
                "a trajectory frame needs env and step: frame_state(traj, env=0, step=10)"
            )
        return bytes(source.state_at(int(env), int(step)))
    if env is not None or step is not None:
        raise CounterfactualError(
            "env and step only apply to trajectories (objects with state_at); got "
            f"{type(source).__name__}"
        )
    if isinstance(source, Counterfactual):
        return source.state
    if isinstance(source, GameState):
        return source.to_bytes()
    if isinstance(source, (bytes, bytearray, memoryview)):
        parse_state(source)
        return bytes(source)
    raise CounterfactualError(
        "source must be state bytes, a GameState or trajectories with state_at(env, step), got "
        f"{type(source).__name__}"
    )


def objects(state: bytes | GameState, kinds: Iterable[str] | None = None) -> list[GameObject]:
    """Every object of the frame's level (on screen or not): entities in engine order, then
    coin and lava tiles by cell. ``kinds`` keeps only those kinds (see :data:`OBJECT_KINDS`).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> objs = objects(state)
    >>> objs[0].kind, objs[0].ref, [o.kind for o in objects(state, ["coin"])]
    ('agent', 0, ['coin'])
    """
    want = set(OBJECT_KINDS if kinds is None else kinds)
    unknown = want - set(OBJECT_KINDS)
    if unknown:
        raise CounterfactualError(f"unknown object kind(s) {sorted(unknown)}; {OBJECT_KINDS}")
    st = _parse(state)
    out: list[GameObject] = []
    ents = st.entities
    for k in range(len(ents)):
        kind = _ENTITY_KIND.get(int(ents["type"][k]))
        if kind is None or kind not in want:
            continue
        e = ents[k]
        out.append(
            GameObject(
                kind,
                k,
                float(e["x"]),
                float(e["y"]),
                float(e["rx"]),
                float(e["ry"]),
                float(e["vx"]),
                float(e["vy"]),
                int(e["render_z"]) not in (-1, 0, 1),
            )
        )
    for tile, kind in _TILE_KIND.items():
        if kind not in want:
            continue
        for x, y in st.grid.cells(tile).tolist():
            out.append(GameObject(kind, (x, y), x + 0.5, y + 0.5, 0.5, 0.5))
    if {"coin", "lava"} & want:  # tiles by cell, row-major from the bottom
        ents_part = [o for o in out if not o.is_tile]
        tiles = sorted((o for o in out if o.is_tile), key=lambda o: (o.ref[1], o.ref[0]))
        out = ents_part + tiles
    return out


def _find(st: GameState, ref: Any) -> GameObject:
    if isinstance(ref, GameObject):
        ref = ref.ref
    if isinstance(ref, (bool, np.bool_)):
        raise CounterfactualError(f"object reference must be an int or (x, y), got {ref!r}")
    if isinstance(ref, (int, np.integer)):
        n = len(st.entities)
        if not 0 <= ref < n:
            raise CounterfactualError(
                f"no entity {int(ref)}: this state has entities 0..{n - 1} (see objects(state))"
            )
        t = int(st.entities["type"][ref])
        if t not in _ENTITY_KIND:
            raise CounterfactualError(
                f"entity {int(ref)} is a {EntityType(t).name} (an enemy's trail), not an object; "
                "edit its enemy instead"
            )
        return next(o for o in objects(st, [_ENTITY_KIND[t]]) if o.ref == int(ref))
    if isinstance(ref, (tuple, list)) and len(ref) == 2:
        x, y = (int(v) for v in ref)
        tile = st.grid.tile(x, y, -1)
        if tile not in _TILE_KIND:
            raise CounterfactualError(
                f"cell ({x}, {y}) holds no coin or lava (tile {tile}); tiles are referenced by "
                "their (x, y) cell, entities by index (see objects(state))"
            )
        return GameObject(_TILE_KIND[tile], (x, y), x + 0.5, y + 0.5, 0.5, 0.5)
    raise CounterfactualError(
        f"object reference must be an entity index (int), a tile's (x, y) cell or a GameObject, "
        f"got {ref!r}"
    )


# -- validation ------------------------------------------------------------------------------
def _checked(data: bytes | bytearray, what: str) -> bytes:
    """The edited bytes, if the same checks that guard loaded states accept them."""
    try:
        parse_state(bytes(data))
    except StateError as e:
        raise StateError(
            f"{what} gives a state the engine cannot take: {e}",
            field=e.field,
            value=e.value,
            valid=e.valid,
        ) from None
    return bytes(data)


def _overlaps(st: GameState, box, skip: set[int], what: str) -> None:
    x0, y0, x1, y1 = box
    ents = st.entities
    for k in range(len(ents)):
        t = int(ents["type"][k])
        if k in skip or t not in _ENTITY_KIND:
            continue
        e = ents[k]
        ex, ey, erx, ery = float(e["x"]), float(e["y"]), float(e["rx"]), float(e["ry"])
        if x0 < ex + erx and ex - erx < x1 and y0 < ey + ery and ey - ery < y1:
            raise CounterfactualError(
                f"{what}: the position overlaps entity {k} ({_ENTITY_KIND[t]} at "
                f"({ex:.2f}, {ey:.2f})); pick a free position (see objects(state)) or pass "
                "allow_overlap=True"
            )


def _check_free_tile(st: GameState, cx: int, cy: int, what: str, allow_overlap: bool) -> None:
    """:func:`_check_free` for the whole tile (cx, cy) (coins and other tiles)."""
    _check_free(
        st,
        cx + 0.5,
        cy + 0.5,
        0.5,
        0.5,
        skip=set(),
        what=what,
        allow_overlap=allow_overlap,
        tile=True,
    )


def _check_free(
    st: GameState,
    x: float,
    y: float,
    rx: float,
    ry: float,
    *,
    skip: set[int],
    what: str,
    allow_overlap: bool,
    tile: bool = False,
) -> None:
    if not (np.isfinite(x) and np.isfinite(y)):
        raise CounterfactualError(f"{what}: position ({x}, {y}) must be finite")
    w, h = st.grid.width, st.grid.height
    if not (rx <= x <= w - rx and ry <= y <= h - ry):
        raise CounterfactualError(
            f"{what}: position ({x:.3f}, {y:.3f}) is outside the level; the centre must lie in "
            f"[{rx}, {w - rx}] x [{ry}, {h - ry}]"
        )
    if allow_overlap:
        return
    free = (int(Tile.SPACE),) if tile else _FREE_FOR_ENTITY
    x0, x1 = int(np.floor(x - rx + _EPS)), int(np.floor(x + rx - _EPS))
    y0, y1 = int(np.floor(y - ry + _EPS)), int(np.floor(y + ry - _EPS))
    for cx in range(x0, x1 + 1):
        for cy in range(y0, y1 + 1):
            t = st.grid.tile(cx, cy, st.out_of_bounds_object)
            if t not in free:
                name = Tile(t).name if t in {int(v) for v in Tile} else str(t)
                raise CounterfactualError(
                    f"{what}: cell ({cx}, {cy}) under the position ({x:.3f}, {y:.3f}) is "
                    f"{name}, not free space; pick a free position or pass allow_overlap=True"
                )
    _overlaps(st, (x - rx, y - ry, x + rx, y + ry), skip, what)


def _trails_of(st: GameState, index: int) -> np.ndarray:
    """Indices of the TRAIL entities the enemy ``index`` left: trails start at the enemy's
    height minus half its half-height and rise 0.01 per step for 9 steps; each goes to the
    nearest enemy at that height (pit enemies walk side by side)."""
    ents = st.entities
    types = ents["type"]
    trails = np.flatnonzero(types == EntityType.TRAIL)
    if not len(trails):
        return trails
    enemies = np.flatnonzero(types == EntityType.ENEMY)
    ty, tx = ents["y"][trails].astype(np.float64), ents["x"][trails].astype(np.float64)
    ey = (ents["y"][enemies] - 0.5 * ents["ry"][enemies]).astype(np.float64)
    ex = ents["x"][enemies].astype(np.float64)
    dy = ty[:, None] - ey[None, :]
    near_y = (dy >= -1e-3) & (dy <= 0.01 * _TRAIL_LIFE + 1e-3)
    reach = ENEMY_SPEED * _TRAIL_LIFE + 0.5
    dist = np.where(near_y, np.abs(tx[:, None] - ex[None, :]), np.inf)
    dist[dist > reach] = np.inf
    owner = np.where(np.isfinite(dist).any(1), enemies[dist.argmin(1)], -1)
    return trails[owner == index]


# -- edits -----------------------------------------------------------------------------------
def _without(st: GameState, drop: Iterable[int]) -> bytearray:
    """The state's bytes without the entities ``drop`` (count patched)."""
    drop = sorted(set(int(i) for i in drop))
    lay = st.layout
    buf = st.to_bytes()
    n = len(st.entities)
    size = ENTITY_DTYPE.itemsize
    keep = np.setdiff1d(np.arange(n), drop)
    ents = np.frombuffer(buf, ENTITY_DTYPE, n, lay.entities)[keep]
    out = bytearray(buf[: lay.num_entities])
    out += np.int32(len(keep)).tobytes() + ents.tobytes()
    out += buf[lay.entities + n * size :]
    return out


def _with_entity(st: GameState, entity: np.ndarray) -> bytearray:
    """The state's bytes with ``entity`` (one ENTITY_DTYPE record) appended, count patched."""
    lay = st.layout
    buf = st.to_bytes()
    n = len(st.entities)
    end = lay.entities + n * ENTITY_DTYPE.itemsize
    out = bytearray(buf[: lay.num_entities])
    out += np.int32(n + 1).tobytes() + buf[lay.entities : end]
    out += np.asarray(entity, ENTITY_DTYPE).reshape(1).tobytes() + buf[end:]
    return out


def hide_object(state: bytes | GameState, ref: Ref | GameObject, *, trails: bool = True) -> bytes:
    """Copy of ``state`` where entity ``ref`` is not drawn (``render_z`` 7) but still acts
    (a hidden saw still kills, a hidden crate still carries the agent). ``trails``: also hide
    a hidden enemy's trail. Tiles (coin, lava) cannot be hidden, only removed: the engine draws
    every tile of a type.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]
    >>> saw = objects(state, ["saw"])[0]
    >>> parse_state(hide_object(state, saw.ref)).entities["render_z"][saw.ref]
    7
    """
    st = _parse(state)
    obj = _find(st, ref)
    if obj.is_tile:
        raise CounterfactualError(
            f"{obj.kind} at cell {obj.ref} is a grid tile: the engine draws every tile of its "
            "type, so it cannot be hidden; use remove_object to take it out"
        )
    ed = st.editable()
    sel = [obj.ref]
    if trails and obj.kind == "enemy":
        sel += _trails_of(st, obj.ref).tolist()
    ed.entities["render_z"][sel] = HIDDEN_RENDER_Z
    return _checked(ed.to_bytes(), f"hiding {obj.kind} {obj.ref}")


def show_object(state: bytes | GameState, ref: Ref | GameObject) -> bytes:
    """Undo :func:`hide_object`: the entity is drawn again at its engine layer.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]
    >>> saw = objects(state, ["saw"])[0]
    >>> show_object(hide_object(state, saw.ref), saw.ref) == state
    True
    """
    st = _parse(state)
    obj = _find(st, ref)
    if obj.is_tile:
        return st.to_bytes()
    ed = st.editable()
    t = int(st.entities["type"][obj.ref])
    sel = [obj.ref]
    if obj.kind == "enemy":
        sel += [i for i in _trails_of(st, obj.ref).tolist() if st.entities["render_z"][i] != 0]
        ed.entities["render_z"][sel[1:]] = 0
    ed.entities["render_z"][obj.ref] = _DEFAULT_RENDER_Z.get(t, 0)
    return _checked(ed.to_bytes(), f"showing {obj.kind} {obj.ref}")


def remove_object(state: bytes | GameState, ref: Ref | GameObject, *, trails: bool = True) -> bytes:
    """Copy of ``state`` without the object: an entity leaves the entity list (later indices
    shift down by one, the state gets 124 bytes shorter), a coin or lava tile becomes free
    space. The agent cannot be removed. ``trails``: also remove a removed enemy's trail.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]
    >>> saw = objects(state, ["saw"])[0]
    >>> len(state) - len(remove_object(state, saw.ref))
    124
    >>> coin = objects(state, ["coin"])[0]
    >>> objects(remove_object(state, coin.ref), ["coin"])
    []
    """
    st = _parse(state)
    obj = _find(st, ref)
    if obj.kind == "agent":
        raise CounterfactualError(
            "the agent cannot be removed (the engine needs exactly one PLAYER); hide it or move "
            "it with set_agent"
        )
    if obj.is_tile:
        ed = st.editable().set_tile(*obj.ref, int(Tile.SPACE))
        return _checked(ed.to_bytes(), f"removing the {obj.kind} at {obj.ref}")
    drop = [obj.ref]
    if trails and obj.kind == "enemy":
        drop += _trails_of(st, obj.ref).tolist()
    return _checked(_without(st, drop), f"removing {obj.kind} {obj.ref}")


def move_object(
    state: bytes | GameState,
    ref: Ref | GameObject,
    x: float,
    y: float,
    *,
    allow_overlap: bool = False,
) -> bytes:
    """Copy of ``state`` with the object's centre at ``(x, y)`` (world units). Tiles move to
    the cell holding ``(x, y)``. The new place must be inside the level, on free space (or an
    invisible enemy barrier) and clear of other entities, unless ``allow_overlap``. Moving the
    agent is :func:`set_agent`; an enemy's trail moves with it.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]
    >>> saw = objects(state, ["saw"])[0]
    >>> moved = move_object(state, saw.ref, saw.x, saw.y + 3)
    >>> [(o.x, o.y) for o in objects(moved) if o.ref == saw.ref] == [(saw.x, saw.y + 3)]
    True
    """
    st = _parse(state)
    obj = _find(st, ref)
    x, y = float(x), float(y)
    what = f"moving {obj.kind} {obj.ref} to ({x}, {y})"
    if obj.kind == "agent":
        return set_agent(st, x=x, y=y, allow_overlap=allow_overlap)
    if obj.is_tile:
        cx, cy = int(np.floor(x)), int(np.floor(y))
        tile = st.grid.tile(*obj.ref)
        ed = st.editable().set_tile(*obj.ref, int(Tile.SPACE))
        _check_free_tile(ed, cx, cy, what, allow_overlap)
        ed.set_tile(cx, cy, tile)
        return _checked(ed.to_bytes(), what)
    _check_free(st, x, y, obj.rx, obj.ry, skip={obj.ref}, what=what, allow_overlap=allow_overlap)
    ed = st.editable()
    dx, dy = x - obj.x, y - obj.y
    sel = [obj.ref]
    if obj.kind == "enemy":
        sel += _trails_of(st, obj.ref).tolist()
    ed.entities["x"][sel] += np.float32(dx)
    ed.entities["y"][sel] += np.float32(dy)
    ed.entities["x"][obj.ref], ed.entities["y"][obj.ref] = x, y
    return _checked(ed.to_bytes(), what)


def add_object(
    state: bytes | GameState,
    kind: str,
    x: float,
    y: float,
    *,
    direction: int = 1,
    theme: int = 0,
    allow_overlap: bool = False,
) -> bytes:
    """Copy of ``state`` with a new ``kind`` (``"saw"``, ``"enemy"``, ``"crate"``, ``"coin"``)
    centred at ``(x, y)``. Entities get every field as the engine's level generator makes them
    (``create_saw_enemy`` / ``create_enemy`` / ``create_crate``: half extent 0.5; an enemy
    walks at 0.15 per step in ``direction`` +1 (right) or -1 and is drawn above the tiles) and
    are appended to the entity list (the state gets 124 bytes longer); ``theme`` picks the
    sprite of an enemy (0..8) or a crate (0..3). A coin is a GOAL tile in the cell holding
    ``(x, y)``: touching any coin completes the level. The place must be free (see
    :func:`move_object`).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> more = add_object(state, "saw", 4.5, 1.5)
    >>> objects(more, ["saw"])[-1].x, len(more) - len(state)
    (4.5, 124)
    >>> add_object(state, "saw", 0.5, 0.5)         # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    CounterfactualError: adding a saw at (0.5, 0.5): cell (0, 0) ... is WALL_TOP, not free...
    """
    if kind not in ADDABLE_KINDS:
        raise CounterfactualError(f"cannot add {kind!r}; addable kinds: {ADDABLE_KINDS}")
    st = _parse(state)
    x, y = float(x), float(y)
    what = f"adding a {kind} at ({x}, {y})"
    if kind == "coin":
        cx, cy = int(np.floor(x)), int(np.floor(y))
        _check_free_tile(st, cx, cy, what, allow_overlap)
        ed = st.editable().set_tile(cx, cy, int(Tile.GOAL))
        return _checked(ed.to_bytes(), what)
    if direction not in (-1, 1):
        raise CounterfactualError(f"direction must be +1 (right) or -1 (left), got {direction!r}")
    themes = {"enemy": NUM_ENEMY_THEMES, "crate": NUM_CRATE_THEMES, "saw": 1}[kind]
    if isinstance(theme, bool) or not isinstance(theme, (int, np.integer)):
        raise CounterfactualError(f"theme must be an integer, got {theme!r}")
    if not 0 <= theme < themes:
        raise CounterfactualError(f"theme of a {kind} must be in 0..{themes - 1}, got {theme}")
    _check_free(st, x, y, 0.5, 0.5, skip=set(), what=what, allow_overlap=allow_overlap)
    types = st.entities["type"]
    enemies = int((types == EntityType.ENEMY).sum()) + (kind == "enemy")
    lasting = int((types != EntityType.TRAIL).sum()) + 1
    if lasting + _TRAIL_LIFE * enemies > MAX_ENTITIES:
        raise CounterfactualError(
            f"{what}: {lasting} entities and {enemies} enemies would exceed {MAX_ENTITIES} "
            f"entities once the enemies leave their trails ({_TRAIL_LIFE} per enemy), and the "
            "states after the next steps could not be loaded again; add fewer objects"
        )
    return _checked(_with_entity(st, new_entity(kind, x, y, direction, theme)), what)


def new_entity(kind: str, x: float, y: float, direction: int = 1, theme: int = 0) -> np.ndarray:
    """One ENTITY_DTYPE record as the engine's ``Entity`` constructor and CoinRun's
    ``create_saw_enemy`` / ``create_enemy`` / ``create_crate`` make it.

    >>> e = new_entity("enemy", 5.5, 1.5, direction=-1)
    >>> round(float(e["vx"]), 4), int(e["smart_step"]), int(e["image_type"]), int(e["render_z"])
    (-0.15, 1, 6, 1)
    """
    t = _KIND_TYPE.get(kind)
    if t is None or kind == "agent":
        raise CounterfactualError(f"cannot make a {kind!r} entity; one of saw, enemy, crate")
    e = np.zeros((), ENTITY_DTYPE)
    e["x"], e["y"], e["rx"], e["ry"] = x, y, 0.5, 0.5
    e["type"] = e["image_type"] = t
    e["friction"] = e["alpha"] = e["health"] = e["grow_rate"] = e["alpha_decay"] = 1.0
    e["theta"] = -100.0
    e["fire_time"] = e["spawn_time"] = e["expire_time"] = -1
    e["auto_erase"] = 1
    if kind == "enemy":
        e["vx"] = ENEMY_SPEED * direction
        e["smart_step"] = 1
        e["image_type"] = int(EntityType.ENEMY1)
        e["render_z"] = 1
    if kind in ("enemy", "crate"):
        e["image_theme"] = theme
    return e


def set_agent(
    state: bytes | GameState,
    *,
    x: float | None = None,
    y: float | None = None,
    vx: float | None = None,
    vy: float | None = None,
    allow_overlap: bool = False,
) -> bytes:
    """Copy of ``state`` with the agent's centre and/or velocity changed (others kept). A new
    position must be free (as in :func:`move_object`); the view follows the agent. Velocity
    bounds are the state checks' (|v| <= 16); the engine then clips ``vy`` to its jump speed
    1.5 and mixes ``vx`` toward the action's 0.5 at the next step.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> parse_state(set_agent(state, x=3.0, vx=0.3)).agent.x
    3.0
    >>> set_agent(state, vx=100.0)                 # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StateError: setting the agent's velocity ...: entity 0 (type 0) vx is 100.0, valid: ...
    """
    st = _parse(state)
    a = st.agent
    i = st.agent_index
    ed = st.editable()
    parts = []
    if x is not None or y is not None:
        nx = a.x if x is None else float(x)
        ny = a.y if y is None else float(y)
        what = f"moving the agent to ({nx}, {ny})"
        _check_free(st, nx, ny, a.rx, a.ry, skip={i}, what=what, allow_overlap=allow_overlap)
        ed.entities["x"][i], ed.entities["y"][i] = nx, ny
        # the crate-landing test compares against the agent's height at the previous step
        ed._pack("<f", ed.layout.coinrun, float(np.float32(ny)))
        parts += [f"x={nx:g}"] * (x is not None) + [f"y={ny:g}"] * (y is not None)
    for name, v in (("vx", vx), ("vy", vy)):
        if v is not None:
            ed.entities[name][i] = float(v)
            parts.append(f"{name}={float(v):g}")
    if not parts:
        raise CounterfactualError("set_agent needs at least one of x, y, vx, vy")
    what = "setting the agent's " + ("velocity" if x is None and y is None else "state")
    return _checked(ed.to_bytes(), f"{what} ({', '.join(parts)})")


# -- rendering -------------------------------------------------------------------------------
def render_state(
    state: bytes | GameState, renderer: Renderer | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(64x64x3 observation, 512x512x3 frame), uint8, of ``state`` as the engine draws it:
    the state is loaded into a 1-env render-mode scratch env (``renderer``: reuse one
    :class:`~rlvision_widgets.environment.render.Renderer` for speed).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> obs, frame = render_state(CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0])
    >>> obs.shape, frame.shape
    ((64, 64, 3), (512, 512, 3))
    """
    data = state.to_bytes() if isinstance(state, GameState) else frame_state(state)
    if renderer is not None:
        return renderer.frames(data)
    r = Renderer()
    try:
        return r.frames(data)
    finally:
        r.close()


# -- value object ----------------------------------------------------------------------------
class Counterfactual:
    """An edited frame: the ``original`` state, the current ``state``, the ``edits`` made
    (human-readable, in order) and the ``history`` of states after each edit. Every method
    returns a new :class:`Counterfactual`; nothing is changed in place. Object references are
    those of :meth:`objects` of the *current* state (removing an entity shifts later indices
    down).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=1).get_state()[0]
    >>> saws = [o.ref for o in objects(state, ["saw"])]
    >>> cf = Counterfactual(state).hide(saws[0]).add("crate", 3.5, 1.5)
    >>> cf.edits
    ('hide saw 4', 'add crate at (3.5, 1.5)')
    >>> cf.undo().edits, cf.reset().state == state
    (('hide saw 4',), True)
    >>> cf = Counterfactual.from_trajectory(traj, env=0, step=12)    # doctest: +SKIP
    """

    __slots__ = ("original", "history", "edits")

    def __init__(
        self,
        original: bytes | GameState,
        history: Iterable[bytes] = (),
        edits: Iterable[str] = (),
    ):
        self.original = frame_state(original)
        self.history = tuple(bytes(s) for s in history)
        self.edits = tuple(str(e) for e in edits)
        if len(self.history) != len(self.edits):
            raise CounterfactualError(
                f"{len(self.history)} states for {len(self.edits)} edits: one state per edit"
            )

    @property
    def state(self) -> bytes:
        """The current (edited) state bytes."""
        return self.history[-1] if self.history else self.original

    @classmethod
    def from_trajectory(cls, traj: Any, env: int, step: int) -> Counterfactual:
        """Start from frame ``(env, step)`` of recorded trajectories (``state_at``).

        >>> cf = Counterfactual.from_trajectory(traj, env=0, step=12)   # doctest: +SKIP
        """
        return cls(frame_state(traj, env, step))

    def _then(self, state: bytes, edit: str) -> Counterfactual:
        return Counterfactual(self.original, (*self.history, state), (*self.edits, edit))

    def _label(self, ref: Any) -> str:
        obj = _find(parse_state(self.state), ref)
        return f"{obj.kind} {obj.ref}"

    def objects(self, kinds: Iterable[str] | None = None) -> list[GameObject]:
        """:func:`objects` of the current state.

        >>> Counterfactual(state).objects(["agent"])[0].ref             # doctest: +SKIP
        0
        """
        return objects(self.state, kinds)

    def hide(self, ref: Ref | GameObject, *, trails: bool = True) -> Counterfactual:
        """:func:`hide_object` (``cf.hide(3)``)."""
        return self._then(hide_object(self.state, ref, trails=trails), f"hide {self._label(ref)}")

    def show(self, ref: Ref | GameObject) -> Counterfactual:
        """:func:`show_object` (``cf.show(3)``)."""
        return self._then(show_object(self.state, ref), f"show {self._label(ref)}")

    def remove(self, ref: Ref | GameObject, *, trails: bool = True) -> Counterfactual:
        """:func:`remove_object` (``cf.remove(3)``, ``cf.remove((41, 5))``)."""
        label = self._label(ref)
        return self._then(remove_object(self.state, ref, trails=trails), f"remove {label}")

    def move(
        self, ref: Ref | GameObject, x: float, y: float, *, allow_overlap: bool = False
    ) -> Counterfactual:
        """:func:`move_object` (``cf.move(3, 10.5, 4.5)``)."""
        label = self._label(ref)
        new = move_object(self.state, ref, x, y, allow_overlap=allow_overlap)
        return self._then(new, f"move {label} to ({float(x):g}, {float(y):g})")

    def add(self, kind: str, x: float, y: float, **kwargs: Any) -> Counterfactual:
        """:func:`add_object` (``cf.add("saw", 4.5, 1.5)``)."""
        new = add_object(self.state, kind, x, y, **kwargs)
        return self._then(new, f"add {kind} at ({float(x):g}, {float(y):g})")

    def set_agent(self, **kwargs: Any) -> Counterfactual:
        """:func:`set_agent` (``cf.set_agent(vx=0.3)``)."""
        parts = ", ".join(
            f"{k}={float(v):g}" for k, v in kwargs.items() if k in ("x", "y", "vx", "vy")
        )
        return self._then(set_agent(self.state, **kwargs), f"set agent {parts}")

    def undo(self) -> Counterfactual:
        """The counterfactual without its last edit (no-op without edits)."""
        return Counterfactual(self.original, self.history[:-1], self.edits[:-1])

    def reset(self) -> Counterfactual:
        """Back to the original frame, no edits."""
        return Counterfactual(self.original)

    def frames(self, renderer: Renderer | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:func:`render_state` of the current state: (64-px observation, 512-px frame)."""
        return render_state(self.state, renderer)

    def __repr__(self) -> str:
        return f"Counterfactual({len(self.edits)} edits: {'; '.join(self.edits) or 'none'})"
