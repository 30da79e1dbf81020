"""Layer access on any torch agent: read a layer's activations, run the network on from a layer,
and edit a layer's output in place (activation-space edits for model editing).

An *agent* maps a uint8 batch ``(N, H, W, 3)`` to ``(logits (N, A), value (N,))``. A network
that offers ``forward_to(obs, layer)`` / ``forward_from(layer, activation)`` and
``layer_names`` (as :class:`~rlvision_widgets.agents.networks.ConvAgent` does) is run through
them for its named layers; any other layer (or model) is reached by dotted module name through
temporary forward hooks (removed in ``finally``, never left on the module), and running "from"
it means a full forward pass whose layer output is *replaced* by the given activation. No
private torch attributes are read.

>>> from rlvision_widgets.agents import build_network
>>> access = LayerAccess(build_network("compact"))
>>> access.layer_names
['1a', '2a', '2b', '3a', '4a']
>>> obs = np.zeros((2, 64, 64, 3), np.uint8)
>>> tuple(access.activations(obs, "2b").shape)        # NHWC
(2, 16, 16, 32)
>>> logits, value = access.forward_from("2b", access.activations_nchw(obs, "2b"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

EditFn = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["EditHandle", "LayerAccess", "check_observations", "get_layer", "module_names"]


class _Stop(Exception):
    """Raised by a capture hook to skip the rest of a forward pass."""


def module_names(model: nn.Module) -> list[str]:
    """Dotted names of every submodule (the names :func:`get_layer` accepts).

    >>> from rlvision_widgets.agents import build_network
    >>> module_names(build_network("compact"))[:3]
    ['1a', '1a.0', '1a.1']
    """
    return [n for n, _ in model.named_modules() if n]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted path, e.g. ``"2b"`` or ``"2b.0"``).

    >>> from rlvision_widgets.agents import build_network
    >>> type(get_layer(build_network("compact"), "2b.0")).__name__
    'Conv2d'
    """
    if not isinstance(name, str) or not name:
        raise KeyError(
            f"layer name must be a non-empty string, got {name!r}; "
            f"valid layers: {module_names(model)}"
        )
    try:
        return model.get_submodule(name)
    except AttributeError:
        pass
    # wrappers that forward attribute access to an inner agent (e.g. EditedAgent)
    obj: Any = model
    try:
        for part in name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        obj = None
    if isinstance(obj, nn.Module):
        return obj
    raise KeyError(f"unknown layer {name!r}; valid layers: {module_names(model)}")


def check_observations(obs: Any, size: int | None = 64) -> torch.Tensor:
    """Validate and convert observations to a uint8 tensor ``(N, size, size, 3)``.

    Accepts numpy arrays or tensors; a single frame ``(H, W, 3)`` gets a batch axis.

    >>> tuple(check_observations(np.zeros((64, 64, 3), np.uint8)).shape)
    (1, 64, 64, 3)
    """
    if isinstance(obs, np.ndarray):
        if obs.dtype != np.uint8:
            raise TypeError(
                f"observations must be uint8 (N, {size}, {size}, 3), got dtype "
                f"{obs.dtype}; convert floats in [0, 1] with (x * 255).astype(np.uint8)"
            )
        t = torch.from_numpy(np.ascontiguousarray(obs))
    elif isinstance(obs, torch.Tensor):
        if obs.dtype != torch.uint8:
            raise TypeError(
                f"observations must be uint8 (N, {size}, {size}, 3), got dtype {obs.dtype}"
            )
        t = obs
    else:
        raise TypeError(
            f"observations must be a uint8 numpy array or tensor, got {type(obs).__name__}"
        )
    if t.dim() == 3:
        t = t.unsqueeze(0)
    want = f"(N, {size}, {size}, 3)" if size else "(N, H, W, 3)"
    if t.dim() != 4 or t.shape[-1] != 3 or (size and tuple(t.shape[1:3]) != (size, size)):
        raise ValueError(f"observations must have shape {want}, got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"observations must have at least one frame, got shape {tuple(t.shape)}")
    return t


def _is_conv_agent(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("forward_to", "forward_from", "layer_names"))


class EditHandle:
    """Removes an activation edit registered by :meth:`LayerAccess.add_edit`.

    Call :meth:`remove`, or use the handle as a context manager.

    >>> from rlvision_widgets.agents import build_network
    >>> access = LayerAccess(build_network("compact"))
    >>> obs = np.full((1, 64, 64, 3), 128, np.uint8)
    >>> handle = access.add_edit("2b", torch.zeros_like)        # blind the network at 2b
    >>> handle.layer, float(access.activations(obs, "2b").sum())
    ('2b', 0.0)
    >>> handle.remove()
    >>> float(access.activations(obs, "2b").sum()) > 0
    True
    >>> with access.add_edit("2b", torch.zeros_like):           # removed on leaving the block
    ...     float(access.activations(obs, "2b").sum())
    0.0
    """

    def __init__(self, handle: torch.utils.hooks.RemovableHandle, layer: str, fn: EditFn):
        self._handle, self.layer, self.fn = handle, layer, fn

    def remove(self) -> None:
        """Stop applying the edit."""
        self._handle.remove()

    def __enter__(self) -> EditHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class LayerAccess:
    """Read, run from, and edit the layers of ``model``.

    ``layer_names``: the ConvAgent's named layers, or for other models every ``Conv2d`` / ``ReLU``
    module by dotted name. Any dotted module name is also accepted by the methods below.
    ``input_shape``: per-frame observation shape used for the dummy input of hook-based
    :meth:`forward_from` (learned from the last :meth:`activations` call).

    >>> from rlvision_widgets.agents import build_network
    >>> access = LayerAccess(build_network("compact"))
    >>> h = access.add_edit("2b", lambda a: a * 0)           # blind the network at 2b
    >>> h.remove()
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...] = (64, 64, 3)):
        self.model = model
        self.fast = _is_conv_agent(model)
        self.input_shape = tuple(input_shape)
        if self.fast and hasattr(model, "config"):
            s = int(model.config.input_size)
            self.input_shape = (s, s, 3)

    # ------------------------------------------------------------------ names
    @property
    def layer_names(self) -> list[str]:
        """Analysable layers (see class docstring)."""
        if self.fast:
            return list(self.model.layer_names)
        return [
            n for n, m in self.model.named_modules() if n and isinstance(m, (nn.Conv2d, nn.ReLU))
        ]

    def check_layer(self, layer: str) -> str:
        """Return ``layer`` if valid, else raise ``KeyError`` naming the valid layers.

        >>> from rlvision_widgets.agents import build_network
        >>> LayerAccess(build_network("compact")).check_layer("2b.0")
        '2b.0'
        """
        if self.fast and layer in self.model.layer_names:
            return layer
        try:
            get_layer(self.model, layer)
        except KeyError:
            raise KeyError(
                f"unknown layer {layer!r}; valid layers: {self.layer_names} "
                f"(any dotted module name also works: {module_names(self.model)})"
            ) from None
        return layer

    def uses_network_paths(self, layer: str) -> bool:
        """True when ``layer`` is reached through the network's own ``forward_to`` /
        ``forward_from``; False when through temporary forward hooks.

        >>> from rlvision_widgets.agents import build_network
        >>> acc = LayerAccess(build_network("compact"))
        >>> acc.uses_network_paths("2b"), acc.uses_network_paths("2b.0")
        (True, False)
        """
        return self.fast and layer in self.model.layer_names

    _fast_layer = uses_network_paths

    @property
    def _obs_size(self) -> int | None:
        return self.input_shape[0] if len(self.input_shape) == 3 else None

    # ------------------------------------------------------------- activations
    def activations_nchw(self, obs: Any, layer: str) -> torch.Tensor:
        """Layer output for ``obs`` as a tensor ``(N, C, H, W)`` (``(N, C, 1, 1)`` for dense
        layers), computed without gradient and with any registered edits applied.

        >>> from rlvision_widgets.agents import build_network
        >>> a = LayerAccess(build_network("compact")).activations_nchw(
        ...     np.zeros((1, 64, 64, 3), np.uint8), "1a")
        >>> tuple(a.shape)
        (1, 32, 16, 16)
        """
        self.check_layer(layer)
        x = check_observations(obs, self._obs_size if self.fast else None)
        self.input_shape = tuple(x.shape[1:])
        with torch.no_grad():
            if self._fast_layer(layer):
                return self.model.forward_to(x, layer)
            return _as_nchw(self._capture(x, layer))

    def activations(self, obs: Any, layer: str) -> torch.Tensor:
        """Layer output for ``obs`` as an NHWC tensor (``.numpy()`` gives frames x H x W x C).

        >>> from rlvision_widgets.agents import build_network
        >>> acts = LayerAccess(build_network("compact")).activations(
        ...     np.zeros((3, 64, 64, 3), np.uint8), "2b")
        >>> acts.numpy().shape
        (3, 16, 16, 32)
        """
        return self.activations_nchw(obs, layer).permute(0, 2, 3, 1)

    def layer_shape(self, layer: str) -> tuple[int, int, int]:
        """``(H, W, C)`` of a layer's output (one dummy forward unless the model knows it).

        >>> from rlvision_widgets.agents import build_network
        >>> LayerAccess(build_network("article")).layer_shape("2b")
        (32, 32, 32)
        """
        self.check_layer(layer)
        if self._fast_layer(layer) and hasattr(self.model, "layer_shapes"):
            return tuple(self.model.layer_shapes[layer])
        a = self.activations_nchw(np.zeros((1, *self.input_shape), np.uint8), layer)
        return (a.shape[2], a.shape[3], a.shape[1])

    def _capture(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        box: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            box.append(out if isinstance(out, torch.Tensor) else out[0])
            raise _Stop

        h = get_layer(self.model, layer).register_forward_hook(hook)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            h.remove()
        if not box:
            raise RuntimeError(f"layer {layer!r} was not called during the forward pass")
        return box[0]

    # ------------------------------------------------------------ forward_from
    def forward_from(
        self, layer: str, activation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network from ``layer``'s output ``activation`` (NCHW) to ``(logits, value)``.

        A network offering ``forward_from`` runs it (for its named layers); otherwise a temporary
        forward hook replaces the
        layer's output during a full forward pass on a dummy (zero) observation batch.
        Gradients flow back to ``activation``. Edits registered on later layers apply.

        >>> from rlvision_widgets.agents import build_network
        >>> acc = LayerAccess(build_network("compact"))
        >>> logits, value = acc.forward_from("4a", torch.zeros(5, 32, 4, 4))
        >>> tuple(logits.shape), tuple(value.shape)
        ((5, 15), (5,))
        """
        self.check_layer(layer)
        if self._fast_layer(layer):
            return self.model.forward_from(layer, activation)
        module = get_layer(self.model, layer)
        called: list[bool] = []

        def hook(_m: nn.Module, _i: Any, out: Any) -> Any:
            called.append(True)
            ref = out if isinstance(out, torch.Tensor) else out[0]
            new = activation.reshape(ref.shape) if ref.dim() == 2 else activation
            if tuple(new.shape) != tuple(ref.shape):
                raise ValueError(
                    f"activation for layer {layer!r} must have shape "
                    f"{(activation.shape[0], *ref.shape[1:])} (NCHW), got "
                    f"{tuple(activation.shape)}"
                )
            return new if isinstance(out, torch.Tensor) else (new, *out[1:])

        h = module.register_forward_hook(hook)
        try:
            dummy = torch.zeros((activation.shape[0], *self.input_shape), dtype=torch.uint8)
            logits, value = self.model(dummy)
        finally:
            h.remove()
        if not called:
            raise RuntimeError(
                f"layer {layer!r} was not called during the forward pass, so the network "
                "cannot be run from it; pick a module the forward pass uses"
            )
        return logits, value.reshape(-1)

    def outputs(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, value)`` for observations, without gradient (edits applied).

        >>> from rlvision_widgets.agents import build_network
        >>> logits, value = LayerAccess(build_network("compact")).outputs(
        ...     np.zeros((2, 64, 64, 3), np.uint8))
        >>> tuple(logits.shape), tuple(value.shape)
        ((2, 15), (2,))
        """
        x = check_observations(obs, self._obs_size if self.fast else None)
        with torch.no_grad():
            logits, value = self.model(x)
        return logits, value.reshape(-1)

    # ------------------------------------------------------------------ edits
    def add_edit(self, layer: str, fn: EditFn) -> EditHandle:
        """Apply ``fn`` to ``layer``'s output (NCHW) on every forward pass until removed.

        ``fn`` maps the output tensor to a tensor of the same shape. Edits affect
        :meth:`activations`, :meth:`forward_from` (for later layers) and plain ``model(obs)``.

        >>> from rlvision_widgets.agents import build_network
        >>> acc = LayerAccess(build_network("compact"))
        >>> with acc.add_edit("2b", lambda a: torch.zeros_like(a)):
        ...     float(acc.activations(np.zeros((1, 64, 64, 3), np.uint8), "2b").abs().sum())
        0.0
        """
        self.check_layer(layer)
        if not callable(fn):
            raise TypeError(f"edit must be callable (tensor -> tensor), got {type(fn).__name__}")

        def hook(_m: nn.Module, _i: Any, out: Any) -> Any:
            if isinstance(out, torch.Tensor):
                new = fn(out)
                if not isinstance(new, torch.Tensor) or new.shape != out.shape:
                    raise ValueError(
                        f"edit on layer {layer!r} must return a tensor of shape {tuple(out.shape)}"
                    )
                return new
            return (fn(out[0]), *out[1:])

        return EditHandle(get_layer(self.model, layer).register_forward_hook(hook), layer, fn)

    @contextlib.contextmanager
    def edited(self, edits: Mapping[str, EditFn]) -> Iterator[LayerAccess]:
        """Context manager applying several edits ``{layer: fn}`` and removing them on exit.

        >>> from rlvision_widgets.agents import build_network
        >>> acc = LayerAccess(build_network("compact"))
        >>> with acc.edited({"2a": lambda a: a * 2}):
        ...     _ = acc.outputs(np.zeros((1, 64, 64, 3), np.uint8))
        """
        handles = [self.add_edit(layer, fn) for layer, fn in edits.items()]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()


def _as_nchw(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4:
        return t
    if t.dim() == 2:
        return t[:, :, None, None]
    raise ValueError(
        f"layer output must be 4-D (N, C, H, W) or 2-D (N, C), got shape {tuple(t.shape)}"
    )
