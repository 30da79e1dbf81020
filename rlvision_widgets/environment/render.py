"""Full-resolution frames and ground-truth object boxes and masks, from engine states.

Frames are re-rendered on demand: a state is restored into a 1-env scratch env that has
``render_mode="rgb_array"`` (bit-exact with the collection env's 64x64 observation, plus the
512x512 frame). The collection env never renders at full resolution.

Boxes come from geometry (the engine's own screen mapping, agent-centred view); masks are exact:
the state is re-rendered with one class hidden (entities: ``render_z`` outside the drawn layers;
tiles: replaced by SPACE; velocity squares: option off) and the changed pixels form the mask.

>>> from rlvision_widgets.environment import CoinRunEnv
>>> r = Renderer()
>>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
>>> obs64, frame512 = r.frames(state)
>>> ann = r.objects(state)                  # {64: ObjectAnnotations, 512: ObjectAnnotations}
>>> ann[512].boxes["agent"], ann[512].masks["agent"].sum()     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coinrun import EnvOptions, ScratchEnv
from .state import (
    DRAWN_LAYERS,
    HIDDEN_RENDER_Z,
    LAVA_TILES,
    WALL_TILES,
    EntityType,
    GameState,
    Tile,
    parse_state,
)

#: Object classes with ground truth. "velocity" is the painted velocity-info squares region.
OBJECT_CLASSES = (
    "agent",
    "saw",
    "enemy_left",
    "enemy_right",
    "crate",
    "coin",
    "lava",
    "wall",
    "velocity",
)
RESOLUTIONS = (64, 512)
_RENDER_EPS = 0.02  # tiles are drawn enlarged by this much on each side
_PLAYER_STRETCH = 0.7415  # the player sprite extends above its hitbox by this share of it
_TILE_CLASS = {
    int(Tile.GOAL): "coin",
    int(Tile.LAVA_MID): "lava",
    int(Tile.LAVA_TOP): "lava",
    int(Tile.WALL_MID): "wall",
    int(Tile.WALL_TOP): "wall",
}


@dataclass
class ObjectAnnotations:
    """Ground truth for one frame at one resolution.

    ``boxes[c]``: (k, 4) float32 ``[x0, y0, x1, y1]`` in pixels (x = column, y = row, origin
    top left), clipped to the frame, one per visible object of class ``c``.
    ``ids[c]``: (k,) entity indices for entity classes, (k, 2) cell (x, y) for tile classes.
    ``masks[c]``: (H, W) bool, the pixels where class ``c`` is drawn (None if not computed).

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> ann = object_boxes(CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0], resolution=64)
    >>> ann.boxes["agent"].shape, ann.ids["agent"].tolist()      # one agent, entity 0
    ((1, 4), [0])
    >>> ann.pixel_boxes("agent").dtype, ann.box_mask("agent").shape, ann.masks is None
    (dtype('int32'), (64, 64), True)
    """

    resolution: int
    boxes: dict[str, np.ndarray]
    ids: dict[str, np.ndarray]
    masks: dict[str, np.ndarray] | None = None

    def pixel_boxes(self, cls: str) -> np.ndarray:
        """Integer boxes ``[x0, y0, x1, y1)`` covering every pixel a box touches."""
        b = self.boxes[cls]
        out = np.concatenate([np.floor(b[:, :2]), np.ceil(b[:, 2:])], axis=1).astype(np.int32)
        return np.clip(out, 0, self.resolution)

    def box_mask(self, cls: str) -> np.ndarray:
        """(H, W) bool union of the class's pixel boxes."""
        m = np.zeros((self.resolution, self.resolution), dtype=bool)
        for x0, y0, x1, y1 in self.pixel_boxes(cls):
            m[y0:y1, x0:x1] = True
        return m


def _view(state: GameState, resolution: int) -> tuple[float, float, float, float, float]:
    """(unit, view_dim, x_off, y_off, visibility) as prepare_for_drawing computes them."""
    a = state.agent
    f32 = np.float32
    if state.options["center_agent"]:
        vis = f32(state.visibility)
        cx, cy = f32(a.x), f32(a.y)
    else:
        vis = f32(max(state.main_width, state.main_height))
        cx, cy = f32(state.main_width * 0.5), f32(state.main_height * 0.5)
    raw_unit = f32(64) / vis
    unit = raw_unit * f32(resolution / 64.0)
    view_dim = f32(64.0) / raw_unit
    return (
        float(unit),
        float(view_dim),
        float(unit * (cx - view_dim / 2)),
        float(unit * (cy - view_dim / 2)),
        float(vis),
    )


def object_boxes(state: GameState | bytes, resolution: int = 64) -> ObjectAnnotations:
    """Per-class boxes of everything drawn in the frame of ``state`` (no engine call).

    ``resolution`` is 64 (observation) or 512 (full frame); see :class:`ObjectAnnotations`.
    Use :meth:`Renderer.objects` for exact masks too.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> ann = object_boxes(state, 512)
    >>> ann.resolution, sorted(ann.boxes) == sorted(OBJECT_CLASSES), len(ann.boxes["agent"])
    (512, True, 1)
    """
    st = state if isinstance(state, GameState) else parse_state(state)
    unit, vd, x_off, y_off, vis = _view(st, resolution)

    def rect(x, y_top, dx, dy, eps=0.0):
        x0 = (x - eps) * unit - x_off
        y0 = (vd - y_top - eps) * unit + y_off
        return x0, y0, x0 + (dx + 2 * eps) * unit, y0 + (dy + 2 * eps) * unit

    boxes: dict[str, list] = {c: [] for c in OBJECT_CLASSES}
    ids: dict[str, list] = {c: [] for c in OBJECT_CLASSES}
    ents = st.entities
    for k in range(len(ents)):
        e = ents[k]
        if int(e["render_z"]) not in DRAWN_LAYERS:
            continue
        t = int(e["type"])
        if t == EntityType.PLAYER:
            cls = "agent"
        elif t == EntityType.SAW:
            cls = "saw"
        elif t == EntityType.ENEMY:
            cls = "enemy_left" if e["vx"] < 0 else "enemy_right"
        elif t == EntityType.CRATE:
            cls = "crate"
        else:
            continue
        x, y, rx, ry = float(e["x"]), float(e["y"]), float(e["rx"]), float(e["ry"])
        x0, y0, x1, y1 = rect(x - rx, y + ry, 2 * rx, 2 * ry)
        if cls == "agent":
            y0 -= _PLAYER_STRETCH * (y1 - y0)
        boxes[cls].append((x0, y0, x1, y1))
        ids[cls].append(k)
    a = st.agent
    cx, cy = (
        (a.x, a.y) if st.options["center_agent"] else (st.main_width * 0.5, st.main_height * 0.5)
    )
    margin = vis / 2.0 + 1
    if st.options["center_agent"]:
        lx, hx = int(cx - margin), int(cx + margin)
        ly, hy = int(cy - margin), int(cy + margin)
    else:
        lx, hx, ly, hy = 0, st.main_width - 1, 0, st.main_height - 1
    grid, oob = st.grid, st.out_of_bounds_object
    for x in range(lx, hx + 1):
        for y in range(ly, hy + 1):
            cls = _TILE_CLASS.get(grid.tile(x, y, oob))
            if cls is not None:
                boxes[cls].append(rect(x, y + 1, 1, 1, _RENDER_EPS))
                ids[cls].append((x, y))
    if st.options["paint_vel_info"]:
        d = resolution * 0.2
        boxes["velocity"].append((0.0, 0.0, 2 * d, d))
        ids["velocity"].append(0)
    out_boxes, out_ids = {}, {}
    for c in OBJECT_CLASSES:
        b = np.asarray(boxes[c], dtype=np.float64).reshape(-1, 4)
        i = np.asarray(ids[c], dtype=np.int32)
        if c in ("coin", "lava", "wall"):
            i = i.reshape(-1, 2)
        visible = (b[:, 2] > 0) & (b[:, 0] < resolution) & (b[:, 3] > 0) & (b[:, 1] < resolution)
        out_boxes[c] = np.clip(b[visible], 0, resolution).astype(np.float32)
        out_ids[c] = i[visible]
    return ObjectAnnotations(resolution, out_boxes, out_ids)


def hidden_variant(state: GameState, cls: str) -> bytes | None:
    """Copy of ``state`` with class ``cls`` not drawn (None if nothing of it is drawn)."""
    ed = state.editable()
    ents = ed.entities
    types = ents["type"]
    if cls in ("agent", "saw", "enemy_left", "enemy_right", "crate"):
        sel = {
            "agent": types == EntityType.PLAYER,
            "saw": types == EntityType.SAW,
            "enemy_left": (types == EntityType.ENEMY) & (ents["vx"] < 0),
            "enemy_right": (types == EntityType.ENEMY) & (ents["vx"] >= 0),
            "crate": types == EntityType.CRATE,
        }[cls]
        sel &= np.isin(ents["render_z"], DRAWN_LAYERS)
        if not sel.any():
            return None
        ed.set_entity_field(sel, "render_z", HIDDEN_RENDER_Z)
    elif cls == "coin":
        ed.replace_tiles(Tile.GOAL, Tile.SPACE)
    elif cls == "lava":
        ed.replace_tiles(LAVA_TILES, Tile.SPACE)
    elif cls == "wall":
        ed.replace_tiles(WALL_TILES, Tile.SPACE)
        ed.set_out_of_bounds_object(Tile.SPACE)
    elif cls == "velocity":
        if not ed.options["paint_vel_info"]:
            return None
        ed.set_option("paint_vel_info", 0)
    else:
        raise ValueError(f"unknown object class {cls!r}; one of {OBJECT_CLASSES}")
    return ed.to_bytes()


class Renderer:
    """Re-renders states: 64x64 observations, 512x512 frames, object boxes and masks.

    One lazily created 1-env render-mode scratch env; ~1.5-2 ms per frame on this machine.

    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> r = Renderer()
    >>> obs64, frame512 = r.frames(state)
    >>> obs64.shape, frame512.shape, r.render(state, 64).dtype
    ((64, 64, 3), (512, 512, 3), dtype('uint8'))
    >>> ann = r.objects(state)                         # boxes + exact masks, 64 and 512 px
    >>> bool(ann[512].masks["agent"].any())
    True
    >>> r.close()
    """

    def __init__(self, options: EnvOptions | None = None):
        self.options = options or EnvOptions(num_envs=1)
        self._scratch: ScratchEnv | None = None

    @property
    def scratch(self) -> ScratchEnv:
        if self._scratch is None:
            self._scratch = ScratchEnv(self.options, render=True)
        return self._scratch

    def frames(self, state: bytes) -> tuple[np.ndarray, np.ndarray]:
        """(64x64x3 observation, 512x512x3 frame) of ``state``, uint8."""
        self.scratch.set_state(state)
        return self.scratch.frames()

    def render(self, state: bytes, resolution: int = 512) -> np.ndarray:
        """The frame of ``state`` at 64 or 512 pixels."""
        obs, frame = self.frames(state)
        if resolution == 64:
            return obs
        if resolution == 512:
            return frame
        raise ValueError(f"resolution must be 64 or 512, got {resolution}")

    def objects(
        self,
        state: bytes | GameState,
        masks: bool = True,
        classes: tuple[str, ...] = OBJECT_CLASSES,
    ) -> dict[int, ObjectAnnotations]:
        """Boxes (and exact masks) of every class at 64 and 512 pixels, keyed by resolution."""
        st = state if isinstance(state, GameState) else parse_state(state)
        out = {res: object_boxes(st, res) for res in RESOLUTIONS}
        if not masks:
            return out
        base = self.frames(st.to_bytes())
        for ann in out.values():
            ann.masks = {}
        for cls in OBJECT_CLASSES:
            variant = None
            if cls in classes and any(len(out[r].boxes[cls]) for r in RESOLUTIONS):
                variant = hidden_variant(st, cls)
            if variant is None:
                for res in RESOLUTIONS:
                    out[res].masks[cls] = np.zeros((res, res), dtype=bool)
                continue
            hidden = self.frames(variant)
            for k, res in enumerate(RESOLUTIONS):
                out[res].masks[cls] = (hidden[k] != base[k]).any(axis=-1)
        return out

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None


__all__ = ["OBJECT_CLASSES", "ObjectAnnotations", "Renderer", "hidden_variant", "object_boxes"]
