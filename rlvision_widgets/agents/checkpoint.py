"""Checkpoints: safetensors weights + a JSON config, written atomically, never unpickled.

A checkpoint is a folder::

    config.json          network config, env options, steps, wall time, seeds, sha256 of files
    model.safetensors    network weights
    optimizer.safetensors (optional) optimizer + normaliser tensors for resuming training

A training run folder holds ``latest.json`` pointing at its newest checkpoint folder
(``ckpt-<steps>``); :func:`resolve_checkpoint` accepts either.

Checkpoint files are untrusted input (docs/threat-model.md): weights are safetensors (never
unpickled), every tensor must be finite, and shapes must match the config's network.

Kills: a checkpoint is written complete into ``.<name>.tmp*`` and renamed into place. Rewriting
an existing folder (same step) moves the old one to ``.<name>.old`` first; a kill between the
two renames leaves ``<name>`` missing, and :func:`resolve_checkpoint` then reads the complete
``.<name>.old``. :func:`remove_stale_temporaries` (call it holding the run lock) puts such a
folder back and deletes temporaries left by kills.

>>> save_checkpoint("runs/demo/ckpt-0", build_network("compact"), {"steps": 0})  # doctest: +SKIP
>>> net, config = load_checkpoint("runs/demo")                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..files import atomic_open, sha256_file, write_json_atomic
from .networks import ConvAgent, NetworkConfig

FORMAT = "rlvision-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or does not match its config."""


def save_checkpoint(
    folder: str | os.PathLike,
    model: ConvAgent,
    meta: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (+ optional resume tensors) and ``meta`` to ``folder`` atomically.

    The files are written (each through :func:`~rlvision_widgets.files.atomic_open`, fsynced)
    into a temporary sibling folder, which is then renamed into place.

    >>> import tempfile
    >>> from rlvision_widgets.agents import build_network
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = save_checkpoint(f"{tmp.name}/ckpt-0", build_network("compact"), {"steps": 0})
    >>> sorted(p.name for p in folder.iterdir())
    ['config.json', 'model.safetensors']
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp"))
    try:
        tensors = {"model.safetensors": model.state_dict()}
        if extra_tensors:
            tensors["optimizer.safetensors"] = extra_tensors
        files = {}
        for name, state in tensors.items():
            with atomic_open(tmp / name, "wb", fsync=True) as f:
                f.write(
                    safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in state.items()})
                )
            files[name] = sha256_file(tmp / name)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "network": model.config.to_dict(),
            **meta,
            "files": files,
        }
        write_json_atomic(tmp / "config.json", config)
        if folder.exists():
            # a directory cannot be replaced in one rename: keep the complete old copy under
            # .<name>.old until the new one is in place (resolve_checkpoint reads it if a kill
            # lands between the renames; remove_stale_temporaries puts it back)
            old = _old_copy(folder)
            if old.exists() and not _is_complete(folder):
                shutil.rmtree(folder)  # a half-removed leftover: the .old copy is the good one
            elif old.exists():
                shutil.rmtree(old)
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _old_copy(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds config.json and every file it lists (names only; contents are
    checked against their sha256 when loaded)."""
    try:
        config = json.loads((folder / "config.json").read_text())
        files = config.get("files") if isinstance(config, dict) else None
        return isinstance(files, dict) and all(
            isinstance(n, str) and Path(n).name == n and (folder / n).is_file() for n in files
        )
    except (OSError, ValueError):
        return False


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Clean what killed checkpoint writes left in ``run_dir``; returns the paths acted on.

    Call it while holding the run's lock (no other process is writing checkpoints there):
    ``.<name>.tmp*`` folders and ``.<file>.*.tmp`` files (atomic-write temporaries) are deleted; a ``.<name>.old`` copy is renamed back to
    ``<name>`` when that folder is missing or incomplete (a kill between the two renames of a
    same-name rewrite), and deleted otherwise.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / ".ckpt-000000000008.tmpab12").mkdir()
    >>> [p.name for p in remove_stale_temporaries(run)], list(run.iterdir())
    (['.ckpt-000000000008.tmpab12'], [])
    """
    run_dir = Path(run_dir)
    acted: list[Path] = []
    for tmp in sorted(run_dir.glob(".*.tmp*")):
        if tmp.is_dir() and not tmp.is_symlink():  # a checkpoint folder being written
            shutil.rmtree(tmp, ignore_errors=True)
            acted.append(tmp)
        elif tmp.name.endswith(".tmp") and (tmp.is_file() or tmp.is_symlink()):
            tmp.unlink(missing_ok=True)  # an atomic_open temporary (e.g. of latest.json)
            acted.append(tmp)
    for old in sorted(run_dir.glob(".*.old")):
        if not old.is_dir() or old.is_symlink():
            continue
        folder = old.with_name(old.name[1 : -len(".old")])
        if not _is_complete(folder) and _is_complete(old):
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(old, folder)
        else:
            shutil.rmtree(old, ignore_errors=True)
        acted.append(old)
    return acted


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse NaN / inf in any floating tensor, naming it."""
    for name, t in tensors.items():
        if t.is_floating_point() or t.is_complex():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise CheckpointError(
                    f"{path}: tensor {name!r} {tuple(t.shape)} has {bad} non-finite value(s) "
                    f"(NaN or inf) of {t.numel()}; training diverged or the file was tampered "
                    "with: resume from an earlier checkpoint"
                )


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder, or a run folder whose ``latest.json`` names one."""
    path = Path(path)
    if path.is_file() and path.name == "config.json":
        path = path.parent
    if (path / "latest.json").is_file():
        try:
            doc = json.loads((path / "latest.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path / 'latest.json'} is corrupted: {exc}") from exc
        name = doc.get("checkpoint") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name or name[0] == ".":
            raise CheckpointError(
                f"{path / 'latest.json'} is corrupted: 'checkpoint' must name a checkpoint "
                f"folder of the run, got {name!r}; point it at the newest ckpt-* folder"
            )
        path = path / name
    if not _is_complete(path) and _is_complete(_old_copy(path)):
        path = _old_copy(path)  # a kill landed inside a same-name rewrite: the old copy
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: expected a folder with config.json and model.safetensors "
            "(or a training run folder with latest.json)"
        )
    return path


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The validated JSON config of a checkpoint."""
    folder = resolve_checkpoint(path)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(
            f"{folder / 'config.json'} is not an rlvision checkpoint config "
            f"(format must be {FORMAT!r})"
        )
    if config.get("version") != VERSION:
        raise CheckpointError(
            f"unsupported checkpoint version {config.get('version')!r} "
            f"(this package reads version {VERSION})"
        )
    files = config.get("files")
    if (
        not isinstance(files, dict)
        or "model.safetensors" not in files
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise CheckpointError(
            f"{folder / 'config.json'}: 'files' must map each file of the checkpoint "
            f"(model.safetensors at least) to its sha256, got {str(files)[:80]!r}"
        )
    return config


def _load_tensors(folder: Path, name: str, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder} is missing {name}")
    files = config.get("files")
    expected = files.get(name) if isinstance(files, dict) else None
    if expected is not None and sha256_file(path) != expected:
        raise CheckpointError(
            f"{path} is corrupted: its sha256 does not match config.json "
            "(re-copy the checkpoint or resume from an earlier one)"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    _check_finite(tensors, path)
    return tensors


def load_checkpoint(
    path: str | os.PathLike, *, with_extra: bool = False
) -> tuple[ConvAgent, dict[str, Any]] | tuple[ConvAgent, dict[str, Any], dict]:
    """Load a network (eval mode) and its config; optionally the resume tensors too.

    ``path`` is a checkpoint folder or a training run folder (its ``latest.json`` is followed).

    >>> import tempfile
    >>> from rlvision_widgets.agents import build_network
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = save_checkpoint(f"{tmp.name}/ckpt-0", build_network("compact"), {"steps": 0})
    >>> net, config = load_checkpoint(f"{tmp.name}/ckpt-0")
    >>> config["steps"], config["network"]["name"], net.training
    (0, 'compact', False)
    >>> net, config, extra = load_checkpoint("runs/my-run", with_extra=True)   # doctest: +SKIP
    >>> tmp.cleanup()
    """
    folder = resolve_checkpoint(path)
    config = read_config(folder)
    try:
        net_config = NetworkConfig.from_dict(config["network"])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: bad network section: {exc}") from exc
    model = ConvAgent(net_config)
    state = _load_tensors(folder, "model.safetensors", config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            filter(
                None,
                [
                    missing and f"missing {missing[:4]}",
                    unexpected and f"unexpected {unexpected[:4]}",
                    wrong
                    and "shape mismatch "
                    + ", ".join(
                        f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}"
                        for k in wrong[:4]
                    ),
                ],
            )
        )
        raise CheckpointError(
            f"weights in {folder} do not match the network in its config.json "
            f"({net_config.name}): {detail}"
        )
    model.load_state_dict(state)
    model.eval()
    if with_extra:
        extra = (
            _load_tensors(folder, "optimizer.safetensors", config)
            if isinstance(config.get("files"), dict) and "optimizer.safetensors" in config["files"]
            else {}
        )
        return model, config, extra
    return model, config
