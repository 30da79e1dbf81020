"""Original vs counterfactual frame: how value, policy and attribution answer an edit of the game.

:func:`compare` renders both engine states to the agent's 64-px observation, runs the agent on
both (value, policy, KL divergence), attributes the output at a layer by integrated gradients
(:func:`~rlvision_widgets.analysis.integrated_gradients.integrated_gradients`) and reduces the
attribution onto NMF directions (per-feature totals and maps, with the exact residual), and can
play the agent from both states for N steps with the same action seed, labelling each rollout
with its outcome and the engine's failure cause
(:func:`~rlvision_widgets.environment.causes.classify_terminal_step`). Edits are made with
:mod:`rlvision_widgets.environment.counterfactual`; see ``docs/counterfactuals.md``.

>>> from rlvision_widgets.agents.registry import load_agent
>>> from rlvision_widgets.environment.counterfactual import Counterfactual
>>> cf = Counterfactual(state).hide(saw_index)                          # doctest: +SKIP
>>> c = compare(load_agent(), cf.original, cf.state, nmf=analysis)      # doctest: +SKIP
>>> c.value_change, c.kl, c.feature_change                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..agents.registry import resolve_agent
from ..agents.sampling import sample_actions
from ..environment.causes import classify_terminal_step
from ..environment.coinrun import EnvOptions, ScratchEnv
from ..environment.counterfactual import Counterfactual, frame_state
from ..environment.state import GameState
from .integrated_gradients import integrated_gradients
from .nmf import AttributionNMF, Reduction
from .outputs import OutputLike
from .settings import IG_STEPS

__all__ = ["Comparison", "Rollout", "compare", "policy_kl", "rollout"]

DEFAULT_LAYER = "2b"


class _threads:
    """Run with ``n`` torch threads, restored afterwards (None: leave as is). One frame at a
    time gains nothing from several threads, and on a busy machine they cost 10-20x."""

    def __init__(self, n: int | None):
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise ValueError(f"n_threads must be None or a positive integer, got {n!r}")
        self.n, self.old = n, None

    def __enter__(self) -> None:
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            torch.set_num_threads(self.old)


@dataclass
class Rollout:
    """The agent played from one state: ``actions``, ``rewards``, ``values`` per step, and
    ``outcome``: ``"success"``, a failure cause from
    :data:`~rlvision_widgets.environment.causes.FAILURE_CAUSES` (the engine's, by replaying
    the terminal step), or ``"unfinished"`` when the steps ran out first.

    >>> r = Rollout(np.array([7, 7]), np.array([0.0, 10.0]), np.array([8.1, 9.0]), "success")
    >>> r.length, r.finished, r.success
    (2, True, True)
    """

    actions: np.ndarray
    rewards: np.ndarray
    values: np.ndarray
    outcome: str

    @property
    def length(self) -> int:
        return int(len(self.actions))

    @property
    def finished(self) -> bool:
        return self.outcome != "unfinished"

    @property
    def success(self) -> bool:
        return self.outcome == "success"

    def to_json(self) -> dict[str, Any]:
        """Plain numbers and lists."""
        return {
            "outcome": self.outcome,
            "length": self.length,
            "return": float(self.rewards.sum()),
            "actions": [int(a) for a in self.actions],
        }


@dataclass
class Comparison:
    """Original (row 0) vs counterfactual (row 1) frame, for one agent.

    ``observations`` (2, 64, 64, 3) what the agent sees; ``values`` (2,); ``logits`` (2, 15);
    ``kl`` = KL(original policy || counterfactual policy) in nats; ``attributions``
    (2, h, w, C) of ``output`` at ``layer`` (integrated gradients, ``steps``); ``features``
    (2, h, w, K) and ``residual`` (2, h, w) their reduction onto the K NMF ``directions``
    (None without directions): ``features.sum(-1) + residual == attributions.sum(-1)``;
    ``rollouts`` (original, counterfactual) or None; ``states`` the two engine states;
    ``settings`` what made it.

    >>> c = compare(load_agent(), original, edited, nmf=analysis)       # doctest: +SKIP
    >>> c.value_change, c.kl, c.feature_change.round(2)                 # doctest: +SKIP
    """

    observations: np.ndarray
    values: np.ndarray
    logits: np.ndarray
    kl: float
    attributions: np.ndarray
    outputs: np.ndarray
    features: np.ndarray | None
    residual: np.ndarray | None
    directions: np.ndarray | None
    rollouts: tuple[Rollout, Rollout] | None
    states: tuple[bytes, bytes] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def probs(self) -> np.ndarray:
        """(2, 15) action probabilities."""
        return torch.softmax(torch.from_numpy(self.logits).double(), -1).numpy()

    @property
    def value_change(self) -> float:
        """Counterfactual value minus original value."""
        return float(self.values[1] - self.values[0])

    @property
    def policy_change(self) -> np.ndarray:
        """(15,) counterfactual minus original action probabilities."""
        p = self.probs
        return p[1] - p[0]

    @property
    def attribution_totals(self) -> np.ndarray:
        """(2,) attribution summed over positions and channels (≈ output minus baseline)."""
        return self.attributions.sum((1, 2, 3), dtype=np.float64)

    @property
    def feature_totals(self) -> np.ndarray | None:
        """(2, K) attribution per NMF feature, summed over positions."""
        return None if self.features is None else self.features.sum((1, 2), dtype=np.float64)

    @property
    def feature_change(self) -> np.ndarray | None:
        """(K,) counterfactual minus original attribution per feature."""
        t = self.feature_totals
        return None if t is None else t[1] - t[0]

    def to_json(self) -> dict[str, Any]:
        """The scalar results as plain numbers (for logs, widgets, studies).

        >>> sorted(comparison.to_json())                               # doctest: +SKIP
        ['feature_change', 'feature_totals', 'kl', 'policy', 'rollouts', 'settings', 'values']
        """
        ft = self.feature_totals
        return {
            "values": [float(v) for v in self.values],
            "kl": float(self.kl),
            "policy": [[float(p) for p in row] for row in self.probs],
            "feature_totals": None if ft is None else ft.tolist(),
            "feature_change": None if ft is None else (ft[1] - ft[0]).tolist(),
            "rollouts": None if self.rollouts is None else [r.to_json() for r in self.rollouts],
            "settings": dict(self.settings),
        }


def policy_kl(logits_p: Any, logits_q: Any) -> np.ndarray:
    """KL(softmax(p) || softmax(q)) per row, in nats (float64).

    >>> float(policy_kl(np.zeros((1, 3)), np.zeros((1, 3)))[0])
    0.0
    >>> round(float(policy_kl(np.log([[0.5, 0.5]]), np.log([[0.9, 0.1]]))[0]), 4)
    0.5108
    """
    lp = torch.log_softmax(torch.as_tensor(np.asarray(logits_p, np.float64)), -1)
    lq = torch.log_softmax(torch.as_tensor(np.asarray(logits_q, np.float64)), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    return kl.clamp_min(0.0).numpy()


def _directions(nmf: Any, layer: str | None) -> tuple[AttributionNMF | None, str]:
    """(estimator to reduce with, layer) from an AttributionNMF, an Analysis, (K, C) array."""
    if nmf is None:
        return None, layer or DEFAULT_LAYER
    if isinstance(nmf, AttributionNMF):
        if not hasattr(nmf, "components_"):
            raise ValueError("the AttributionNMF passed as nmf is not fitted; fit it first")
        return nmf, layer or DEFAULT_LAYER
    settings = getattr(nmf, "settings", None)
    if hasattr(nmf, "directions") and isinstance(settings, dict):  # an Analysis
        a_layer = settings.get("layer")
        if layer is not None and a_layer is not None and layer != a_layer:
            raise ValueError(
                f"layer {layer!r} does not match the analysis's layer {a_layer!r}: its NMF "
                "directions live in that layer's channels; pass layer=None or the same layer"
            )
        comps, layer = np.asarray(nmf.directions), a_layer or layer or DEFAULT_LAYER
    else:
        comps = np.asarray(nmf)
    if comps.ndim != 2 or comps.dtype.kind not in "fiu" or comps.size == 0:
        raise ValueError(
            "nmf must be None, a fitted AttributionNMF, an Analysis or a (K, C) array of "
            f"non-negative directions; got {type(nmf).__name__} {getattr(comps, 'shape', '')}"
        )
    est = AttributionNMF.from_directions(comps)
    return est, layer or DEFAULT_LAYER


def _state_bytes(state: Any, what: str) -> bytes:
    try:
        return frame_state(state)
    except ValueError as e:
        raise type(e)(f"{what}: {e}") from None


def rollout(
    agent: nn.Module | str | None,
    state: bytes | GameState,
    steps: int,
    *,
    seed: int = 0,
    sample: bool = True,
    scratch: ScratchEnv | None = None,
    n_threads: int | None = 1,
) -> Rollout:
    """Play ``agent`` from ``state`` for at most ``steps`` steps (stopping at the episode's
    end). Actions are drawn with :func:`~rlvision_widgets.agents.sampling.sample_actions`
    from one generator seeded with ``seed`` (``sample=False``: argmax), so two rollouts with
    the same seed use the same random numbers and differ only where the policies differ.
    ``n_threads``: torch threads for the one-frame forward passes (restored afterwards;
    None: torch's current setting).

    >>> from rlvision_widgets.agents.registry import load_agent
    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> r = rollout(load_agent("random"), CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0], 5)
    >>> r.length, r.outcome
    (5, 'unfinished')
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    data = _state_bytes(state, "rollout state")
    agent = resolve_agent(agent)
    own = scratch is None
    sc = scratch or ScratchEnv(EnvOptions(num_envs=1))
    gen = torch.Generator().manual_seed(int(seed))
    actions, rewards, values = [], [], []
    outcome = "unfinished"
    with _threads(n_threads):
        try:
            sc.set_state(data)
            obs = sc.observation()
            for _ in range(int(steps)):
                with torch.no_grad():
                    logits, value = agent(torch.from_numpy(obs[None]))
                if sample:
                    a = int(sample_actions(logits, gen)[0])
                else:
                    a = int(logits.argmax(-1)[0])
                pre = sc.get_state()
                sc.act(a)
                obs, rew, first = sc.observe()
                actions.append(a)
                rewards.append(rew)
                values.append(float(value.reshape(-1)[0]))
                if first:
                    outcome = "success" if rew > 0 else classify_terminal_step(pre, a, sc)
                    break
        finally:
            if own:
                sc.close()
    return Rollout(
        np.asarray(actions, np.int64),
        np.asarray(rewards, np.float32),
        np.asarray(values, np.float32),
        outcome,
    )


def compare(
    agent: nn.Module | str | None,
    original_state: bytes | GameState | Counterfactual,
    counterfactual_state: bytes | GameState | None = None,
    *,
    layer: str | None = None,
    nmf: Any = None,
    output: OutputLike = "value",
    steps: int = IG_STEPS,
    rollout_steps: int = 0,
    seed: int = 0,
    sample: bool = True,
    n_threads: int | None = 1,
) -> Comparison:
    """Compare the agent on an original and a counterfactual frame (see :class:`Comparison`).

    ``agent``: a module or a name/path (:func:`~rlvision_widgets.agents.registry.resolve_agent`;
    None: the shipped agent). ``original_state`` / ``counterfactual_state``: engine state bytes
    (or GameStates); a :class:`~rlvision_widgets.environment.counterfactual.Counterfactual`
    alone gives both. ``layer``: where attributions are taken (default: the analysis's layer,
    else ``"2b"``). ``nmf``: the directions to reduce onto: a fitted
    :class:`~rlvision_widgets.analysis.nmf.AttributionNMF`, an
    :class:`~rlvision_widgets.analysis.pipeline.Analysis` (its ``directions``), a (K, C)
    array, or None (channels only). ``output``: what is attributed (``"value"``,
    ``"logit:<a>"``, ...); ``steps``: integrated-gradient steps. ``rollout_steps`` > 0 also
    plays the agent from both states (:func:`rollout`, same ``seed``, ``sample``).
    ``n_threads``: torch threads for these small batches (restored afterwards; None: torch's
    current setting).

    >>> from rlvision_widgets.agents.registry import load_agent
    >>> from rlvision_widgets.environment import CoinRunEnv
    >>> state = CoinRunEnv(num_envs=1, rand_seed=0).get_state()[0]
    >>> c = compare(load_agent(), state, state, rollout_steps=3)
    >>> c.kl, c.value_change, [r.length for r in c.rollouts]
    (0.0, 0.0, [3, 3])
    """
    if isinstance(original_state, Counterfactual):
        if counterfactual_state is not None:
            raise ValueError(
                "pass a Counterfactual alone (it holds both states) or two states, not both"
            )
        original_state, counterfactual_state = original_state.original, original_state.state
    if counterfactual_state is None:
        raise ValueError("compare needs the counterfactual state (or a Counterfactual)")
    states = (
        _state_bytes(original_state, "original_state"),
        _state_bytes(counterfactual_state, "counterfactual_state"),
    )
    est, layer = _directions(nmf, layer)
    model = resolve_agent(agent)
    model.eval()
    scratch = ScratchEnv(EnvOptions(num_envs=1))
    with _threads(n_threads):
        try:
            obs = []
            for s in states:
                scratch.set_state(s)
                obs.append(scratch.observation())
            x = np.stack(obs)
            with torch.no_grad():
                logits, value = model(torch.from_numpy(x))
            logits_np = logits.double().numpy()
            attr = integrated_gradients(model, x, layer, output=output, steps=steps)
            red: Reduction | None = None
            if est is not None:
                if est.components_.shape[1] != attr.attributions.shape[-1]:
                    raise ValueError(
                        f"the NMF directions have {est.components_.shape[1]} channels but layer "
                        f"{layer!r} has {attr.attributions.shape[-1]}; pass directions of that layer"
                    )
                red = est.reduce(attr.attributions)
            rolls = None
            if rollout_steps:
                rolls = tuple(
                    rollout(
                        model,
                        s,
                        rollout_steps,
                        seed=seed,
                        sample=sample,
                        scratch=scratch,
                        n_threads=None,
                    )
                    for s in states
                )
        finally:
            scratch.close()
    kl = float(policy_kl(logits_np[:1], logits_np[1:])[0])
    return Comparison(
        observations=x,
        values=value.reshape(-1).double().numpy(),
        logits=logits_np,
        kl=kl,
        attributions=attr.attributions,
        outputs=attr.outputs,
        features=None if red is None else red.features,
        residual=None if red is None else red.residual,
        directions=None if est is None else est.components_.copy(),
        rollouts=rolls,
        states=states,
        settings={
            "layer": layer,
            "output": attr.output,
            "steps": int(steps),
            "rollout_steps": int(rollout_steps),
            "seed": int(seed),
            "sample": bool(sample),
            "n_features": None if est is None else int(est.components_.shape[0]),
        },
    )
