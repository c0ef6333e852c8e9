"""Checkpoint files: atomic writes, safe reads, state-dict cleaning and defensive loading.

A labelmend checkpoint is a ``dict`` of primitives (str, int, float, bool, None, lists, tuples and
dicts of those) and ``state_dict``s of tensors, so that ``torch.load(weights_only=True)`` can read
it without running any pickled code. Configs are stored as plain dicts (``dataclasses.asdict``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.atomic import atomic_open

logger = logging.getLogger(__name__)

#: Keys under which training checkpoints nest the weights, in order of preference (EMA first).
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema")
_PLAIN_KEYS = ("state_dict", "model", "module", "net")
#: Prefixes added by DistributedDataParallel / DataParallel and by ``torch.compile``.
_PREFIXES = ("module.", "_orig_mod.")
#: What torch's weights-only unpickler names when it meets a class or function it will not build.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*([^\n]+(?:\n[^\n]+)?)")


class CheckpointError(ValueError):
    """A checkpoint file could not be used: refused, unreadable, or not matching the model."""


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`common.atomic.atomic_open`).

    A process killed mid-write leaves either the old file or the new one, never half of one, and a
    failed save (e.g. an unpicklable value) leaves the old file and no temporary file.

    Args:
        path: Destination file; its parent folder is created if missing.
        payload: Primitives and tensors only (it must load back with ``weights_only=True``).

    Returns:
        The destination path.
    """
    dest = Path(path)
    with atomic_open(dest, "wb") as handle:
        torch.save(dict(payload), handle)
    return dest


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; pickled objects are refused.

    Args:
        path: A file written by ``torch.save`` (a labelmend checkpoint or any state dict).
        map_location: Where tensors are put; CPU by default.

    Returns:
        The loaded dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file holds Python objects other than tensors and primitives (a pickle
            payload), is not a torch file, or does not hold a dict.
    """
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: checkpoint file not found; check the path")
    try:
        obj = torch.load(src, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _UNSUPPORTED_GLOBAL.search(str(err))
        if found is None:
            detail = _UNPICKLER_DETAIL.search(str(err))
            raise CheckpointError(
                f"{src}: not a readable torch checkpoint "
                f"({detail.group(1).strip()[:120] if detail else 'unpickling failed'}); "
                "check that the file is complete and was written by torch.save"
            ) from err
        raise CheckpointError(
            f"{src}: refused to load: it holds pickled Python objects, not only tensors and primitives "
            f"({found.group(1)}); re-save it as a plain state dict (torch.save(model.state_dict(), path))"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"{src}: not a readable torch checkpoint ({type(err).__name__}: {str(err)[:200]}); "
            "check that the file is complete"
        ) from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``module.`` (DDP) and ``_orig_mod.`` (``torch.compile``) prefixes from every key.

    Args:
        state_dict: Parameter name → tensor.

    Returns:
        A new dict with the cleaned names.
    """
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key
        stripped = True
        while stripped:
            stripped = False
            for prefix in _PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    stripped = True
        cleaned[name] = value
    return cleaned


def extract_state_dict(obj: Mapping[str, Any], *, use_ema: bool = True, source: str = "checkpoint") -> dict:
    """Find the model weights inside a loaded checkpoint and clean their names.

    Looks for ``state_dict_ema`` / ``model_ema`` / ``ema`` (when ``use_ema``), then ``state_dict`` /
    ``model`` / ``module`` / ``net``, then treats the whole dict as a state dict.

    Args:
        obj: What ``load_checkpoint`` returned.
        use_ema: Prefer EMA weights when the checkpoint has them.
        source: Name used in messages (usually the file path).

    Returns:
        Parameter name → tensor, with DDP / compile prefixes removed.

    Raises:
        CheckpointError: No state dict of tensors was found.
    """
    keys = (*_EMA_KEYS, *_PLAIN_KEYS) if use_ema else _PLAIN_KEYS
    for key in keys:
        if _is_state_dict(obj.get(key)):
            logger.info("%s: using weights under key %r", source, key)
            return clean_state_dict(obj[key])
    if _is_state_dict(obj):
        return clean_state_dict(obj)
    raise CheckpointError(
        f"{source}: no state dict of tensors found (looked for {', '.join(keys)} or a flat dict); "
        "save the weights with torch.save(model.state_dict(), path)"
    )


def read_state_dict(path: str | os.PathLike[str], *, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """Read model weights from a ``.pth``/``.pt``/``.bin`` torch file or a ``.safetensors`` file.

    Args:
        path: Checkpoint file.
        use_ema: Prefer EMA weights when the checkpoint has them.

    Returns:
        Parameter name → CPU tensor, prefixes cleaned.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is refused (pickle payload) or holds no state dict.
    """
    src = Path(path)
    if src.suffix == ".safetensors":
        if not src.is_file():
            raise FileNotFoundError(f"{src}: checkpoint file not found; check the path")
        from safetensors.torch import load_file

        return clean_state_dict(load_file(str(src), device="cpu"))
    return extract_state_dict(load_checkpoint(src), use_ema=use_ema, source=str(src))


def _short_list(names: Iterable[str], limit: int = 8) -> str:
    items = sorted(names)
    shown = ", ".join(items[:limit])
    return shown + (f" … (+{len(items) - limit} more)" if len(items) > limit else "")


def load_weights_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    classifier_prefixes: Iterable[str] = (),
    source: str = "checkpoint",
) -> list[str]:
    """Load ``state_dict`` into ``model``; only a mismatched or absent classifier head may differ.

    Classifier tensors (names under one of ``classifier_prefixes``) whose shape differs from the
    model's (another class count) are dropped and keep the model's fresh initialisation; this is
    logged. Every other difference — a missing key, an unexpected key, a shape mismatch — is an error.

    Args:
        model: The freshly built model (its head already sized for the wanted class count).
        state_dict: Cleaned parameter name → tensor.
        classifier_prefixes: Module names of the classifier head, e.g. ``("fc",)``.
        source: Name used in messages.

    Returns:
        The names of the head tensors left at their fresh initialisation (empty when all loaded).

    Raises:
        CheckpointError: Keys other than the head are missing or unexpected, or shapes differ.
    """
    prefixes = tuple(p + "." for p in classifier_prefixes if p)
    own = model.state_dict()

    def is_head(name: str) -> bool:
        return name.startswith(prefixes) if prefixes else False

    to_load: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    mismatched: list[str] = []
    for name, tensor in state_dict.items():
        if name in own and own[name].shape != tensor.shape:
            if is_head(name):
                dropped.append(name)
                continue
            mismatched.append(f"{name} {tuple(tensor.shape)} vs model {tuple(own[name].shape)}")
            continue
        to_load[name] = tensor
    unexpected = [n for n in to_load if n not in own]
    missing = [n for n in own if n not in to_load and not is_head(n)]
    problems = []
    if mismatched:
        problems.append(f"shape mismatch: {_short_list(mismatched, 4)}")
    if missing:
        problems.append(f"missing keys: {_short_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short_list(unexpected)}")
    if problems:
        raise CheckpointError(
            f"{source}: weights do not fit this model ({'; '.join(problems)}); "
            "check that the checkpoint was saved from the same backbone"
        )
    model.load_state_dict(to_load, strict=False)
    fresh = sorted(n for n in own if is_head(n) and n not in to_load)
    if fresh:
        logger.warning(
            "%s: classifier head re-initialised (%s) — the checkpoint's head has another class count or none",
            source,
            ", ".join(fresh),
        )
    return fresh


def weights_fingerprint(model: nn.Module, *, exclude_prefixes: Iterable[str] = ()) -> str:
    """A SHA-256 hex digest of the model's weights (names, dtypes, shapes and bytes).

    Args:
        model: Any module.
        exclude_prefixes: Module names whose tensors are left out (e.g. the classifier head, which
            pooled features do not depend on).

    Returns:
        64 hex characters; equal weights give equal digests.
    """
    skip = tuple(p + "." for p in exclude_prefixes if p)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if skip and name.startswith(skip):
            continue
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
