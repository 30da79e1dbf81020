"""The frame-level blindness check: does an edit do to the network what hiding the object does?

Where :func:`~rlvision_widgets.studies.blindness.run_blindness_experiments` counts failures
over whole levels, :func:`removal_effects` compares, frame by frame, the agent's response to an
object hidden by the engine with its response to the edit. The edit is an edited agent or an
:class:`~rlvision_widgets.agents.editing.Edit` (applied to a copy by
:func:`~rlvision_widgets.agents.editing.apply_edit`, the one editing mechanism).

>>> removal_effects(agent, Edit("2b", v), traj, "saw")                   # doctest: +SKIP
{'frames': 512, 'value_hidden': 0.61, 'value_edit': 0.35, 'value_blindness': 0.57, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..agents.editing import Edit, apply_edit
from ..analysis.features import resolve_class
from ..environment.render import hidden_variant, object_boxes
from ..environment.state import parse_state

__all__ = ["removal_effects"]


def removal_effects(
    agent: nn.Module,
    edited: nn.Module | Edit | Sequence[Edit],
    traj: Any,
    cls: str = "saw",
    max_frames: int = 512,
    seed: int = 0,
) -> dict[str, Any]:
    """Frame-level check of an edit: does it do to the network what hiding the object does?

    ``edited``: the edited agent, or the edit(s) to apply to ``agent`` (:func:`apply_edit`).

    On corpus frames where ``cls`` is in view, each frame is re-rendered with that class not
    drawn (the engine's own invisible-saws mechanism). Compared on those frames:

    * ``value_hidden``: mean change of the original agent's value when the object is hidden;
      ``value_edit``: mean change when instead the edited agent sees the original frame;
      ``value_blindness`` = ``value_edit / value_hidden`` (1 = the edit removes the value's
      whole response to the object, 0 = none of it); ``value_corr``: correlation across frames.
    * ``policy_kl_hidden`` / ``policy_kl_edit``: mean KL(original policy || policy with the
      object hidden / edited policy), and ``policy_blindness`` = ``kl_edit / kl_hidden``
      (how large the edit's policy change is relative to hiding's; any change counts);
      ``policy_toward_hidden`` = 1 - KL(hidden || edited) / KL(hidden || original): the share
      of the way from the original policy to the policy with the object hidden that the edit
      goes (1 = the edited policy acts as if the object were hidden; <= 0 = no closer).
    * ``*_without``: the edit's effect on frames *without* the class (specificity).

    >>> removal_effects(agent, blind_agent(agent, v, "2b"), traj, "saw")      # doctest: +SKIP
    {'frames': 512, 'value_hidden': 0.61, 'value_edit': 0.35, 'value_blindness': 0.57, ...}
    """
    if not isinstance(edited, nn.Module):
        edited = apply_edit(agent, edited)
    cls = resolve_class(cls)
    frames = [(e, t) for e in range(traj.num_envs) for t in range(traj.num_steps)]
    rng = np.random.default_rng(seed)
    rng.shuffle(frames)
    with_cls, without, hidden_obs = [], [], []
    renderer = traj.renderer
    for e, t in sorted(frames[: 8 * max_frames]):
        if len(with_cls) >= max_frames and len(without) >= max_frames:
            break
        try:
            state = traj.state_at(e, t)
        except (KeyError, IndexError):
            continue
        st = parse_state(state)
        if len(object_boxes(st, 64).boxes[cls]):
            if len(with_cls) < max_frames:
                variant = hidden_variant(st, cls)
                if variant is not None:
                    hidden_obs.append(renderer.frames(variant)[0])
                    with_cls.append((e, t))
        elif len(without) < max_frames:
            without.append((e, t))

    def run(model: nn.Module, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, value = model(torch.from_numpy(np.ascontiguousarray(obs)))
        return torch.log_softmax(logits.float(), -1).numpy(), value.float().numpy()

    def kl(lp: np.ndarray, lq: np.ndarray) -> np.ndarray:
        return (np.exp(lp) * (lp - lq)).sum(-1)

    out: dict[str, Any] = {"class": cls, "frames": len(with_cls), "frames_without": len(without)}
    if with_cls:
        idx = np.asarray(with_cls)
        obs = traj.obs[idx[:, 0], idx[:, 1]]
        lp0, v0 = run(agent, obs)
        lph, vh = run(agent, np.stack(hidden_obs))
        lpe, ve = run(edited, obs)
        dh, de = vh - v0, ve - v0
        klh, kle = kl(lp0, lph), kl(lp0, lpe)
        kl_h0, kl_he = kl(lph, lp0).mean(), kl(lph, lpe).mean()
        out.update(
            value=float(v0.mean()),
            value_hidden=float(dh.mean()),
            value_edit=float(de.mean()),
            value_blindness=float(de.mean() / dh.mean()) if dh.mean() != 0 else None,
            value_corr=float(np.corrcoef(dh, de)[0, 1])
            if len(dh) > 2 and dh.std() > 0 and de.std() > 0
            else None,
            policy_kl_hidden=float(klh.mean()),
            policy_kl_edit=float(kle.mean()),
            policy_blindness=float(kle.mean() / klh.mean()) if klh.mean() > 0 else None,
            policy_toward_hidden=float(1 - kl_he / kl_h0) if kl_h0 > 0 else None,
        )
    if without:
        idx = np.asarray(without)
        obs = traj.obs[idx[:, 0], idx[:, 1]]
        lp0, v0 = run(agent, obs)
        lpe, ve = run(edited, obs)
        out.update(
            value_edit_without=float((ve - v0).mean()),
            value_abs_edit_without=float(np.abs(ve - v0).mean()),
            policy_kl_edit_without=float(kl(lp0, lpe).mean()),
        )
    return out
