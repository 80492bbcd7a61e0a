"""Checkpoint layouts: read a file, unwrap it, map its keys onto a timm network, or say why not.

One path for every checkpoint file (:func:`load_weights_file`):

1. read it: safetensors, or a torch pickle with ``torch.load(weights_only=True)``;
2. unwrap it: a training checkpoint ``{'model': ..., 'model_ema': ..., 'optimizer': ...}`` gives
   its raw weights (``state_dict``, then ``model``), else its EMA weights (``state_dict_ema``,
   ``model_ema``); which entry was taken, and which the file offered, go to the sidecar.  DDP and
   ``torch.compile`` prefixes (``module.``, ``_orig_mod.``) are removed by timm's
   ``clean_state_dict``;
3. cast floating-point tensors to float32 (fp16 / bf16 files), recording the source dtype;
4. map keys: ``names`` applies the architecture's timm ``checkpoint_filter_fn`` where timm has one
   (this is how the official facebookresearch ConvNeXt / ConvNeXt V2 layouts are converted, as
   timm does for its own downloads); ``positional`` maps the i-th tensor of the file to the i-th
   tensor of the network's ``state_dict``, checking every shape (:func:`positional_mapping`);
5. strict ``load_state_dict``; when it cannot fit, ONE :class:`ConfigError` lists the first
   unmatched keys on both sides, every shape mismatch and the remedies (:func:`mismatch_message`).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from timm.models import clean_state_dict
from torch import nn

from ..core.errors import ConfigError

__all__ = [
    "RAW_ENTRIES",
    "EMA_ENTRIES",
    "KEY_MAPPINGS",
    "read_state_dict",
    "unwrap_state_dict",
    "positional_mapping",
    "mismatch_message",
    "load_weights_file",
]

RAW_ENTRIES = ("state_dict", "model")
EMA_ENTRIES = ("state_dict_ema", "model_ema")
KEY_MAPPINGS = ("names", "positional")
_SHOWN = 5  # unmatched keys listed per side
_SHOWN_SHAPES = 20  # shape mismatches listed


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(checkpoint) -> tuple[dict[str, torch.Tensor], dict]:
    """The weights inside a checkpoint object and how they were found.

    Returns ``(state_dict, info)``; ``info['checkpoint_entry']`` is the entry taken (dotted for
    nested wrappers, None for a bare state dict), ``info['checkpoint_entries']`` every weights
    entry the file offers, ``info['removed_prefixes']`` the wrapper prefixes removed (if any).
    Raises ``ValueError`` naming the top-level keys when no weights are found.
    """
    path, obj, offered = [], checkpoint, []
    while not _is_state_dict(obj):
        found = [
            k for k in RAW_ENTRIES + EMA_ENTRIES if isinstance(obj, dict) and isinstance(obj.get(k), dict)
        ]
        if not found:
            keys = list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"holds no state dict of tensors (top-level entries: {keys})")
        offered = offered or found
        path.append(found[0])  # raw weights before EMA, in the order of RAW_ENTRIES + EMA_ENTRIES
        obj = obj[found[0]]
    cleaned = clean_state_dict(obj)
    info = {"checkpoint_entry": ".".join(path) or None, "checkpoint_entries": offered}
    removed = sorted({k[: len(k) - len(c)] for k, c in zip(obj, cleaned, strict=True) if k != c})
    if removed:
        info["removed_prefixes"] = removed
    return cleaned, info


def read_state_dict(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read, unwrap and cast a checkpoint file (steps 1-3 of the module docstring).

    Returns ``(state_dict, info)``: float32 tensors (integer buffers unchanged) and the info of
    :func:`unwrap_state_dict` plus ``source_dtype`` (``float16``, ``bfloat16``, ``float32``; joined
    with ``+`` when mixed).  Raises :class:`ConfigError` (key ``models``) for a file that cannot be
    read or holds no weights.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            checkpoint = safetensors.torch.load_file(str(path), device="cpu")
        else:  # training checkpoints often carry their argparse options
            with torch.serialization.safe_globals([argparse.Namespace]):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state_dict, info = unwrap_state_dict(checkpoint)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, safetensors.SafetensorError) as err:
        raise ConfigError(
            "models",
            f"cannot read weights file {path}: {str(err).splitlines()[0][:300]}; it must be a .safetensors "
            "file or a torch.save'd state dict (possibly wrapped as {'model': ...}) of plain tensors",
        ) from None
    dtypes = sorted(
        {str(t.dtype).removeprefix("torch.") for t in state_dict.values() if t.is_floating_point()}
    )
    info["source_dtype"] = "+".join(dtypes) or None
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    return state_dict, info


def _shape(tensor) -> str:
    return str(tuple(tensor.shape))


def positional_mapping(
    source: dict, target: dict, what: str = "the checkpoint", network: str = "the network"
) -> dict:
    """``source``'s tensors under ``target``'s keys, matched by position (i-th to i-th).

    Raises :class:`ConfigError` (key ``models``) when the counts differ or at the first position
    whose shape (or floating/integer kind) differs, naming both keys and shapes.
    """
    pairs = list(zip(source.items(), target.items(), strict=False))  # counts checked below
    for i, ((skey, stensor), (tkey, ttensor)) in enumerate(pairs):
        if stensor.shape != ttensor.shape or stensor.is_floating_point() != ttensor.is_floating_point():
            raise ConfigError(
                "models",
                f"key_mapping positional: {what} does not follow the order of {network}: at position {i} "
                f"the checkpoint's '{skey}' {_shape(stensor)} {stensor.dtype} meets the network's '{tkey}' "
                f"{_shape(ttensor)} {ttensor.dtype}; check the architecture name and its model_kwargs "
                "(positional mapping needs the same tensors in the same order)",
            )
    if len(source) != len(target):
        raise ConfigError(
            "models",
            f"key_mapping positional: {what} holds {len(source)} tensors, {network} {len(target)} (the "
            f"first {len(pairs)} agree in shape); check the architecture name and its model_kwargs",
        )
    return {tkey: stensor for (_, stensor), tkey in zip(source.items(), target, strict=True)}


def _fits_positionally(source: dict, target: dict) -> bool:
    try:
        positional_mapping(source, target)
    except ConfigError:
        return False
    return True


def mismatch_message(
    source: dict, target: dict, what: str, network: str = "the network", note: str = ""
) -> str:
    """Why ``source`` cannot be loaded strictly into a network with state dict ``target``.

    Lists the first unmatched keys of both sides (with shapes), every shape mismatch (key,
    checkpoint shape, network shape) and the remedies: ``model_kwargs`` for shape mismatches,
    ``key_mapping: positional`` for another key layout (said to fit when it does).
    """
    only_source = [k for k in source if k not in target]
    only_target = [k for k in target if k not in source]
    shapes = [k for k in source if k in target and source[k].shape != target[k].shape]
    matched = len(target) - len(only_target) - len(shapes)
    parts = [f"{what} does not fit {network}: {matched} of its {len(target)} tensors match by name and shape"]
    for keys, side, tensors in ((only_source, "checkpoint", source), (only_target, "network", target)):
        if keys:
            shown = ", ".join(f"'{k}' {_shape(tensors[k])}" for k in keys[:_SHOWN])
            parts.append(f"{len(keys)} keys only in the {side}, first: {shown}")
    if shapes:
        shown = [f"'{k}': checkpoint {_shape(source[k])} vs network {_shape(target[k])}" for k in shapes]
        more = f" (and {len(shapes) - _SHOWN_SHAPES} more)" if len(shapes) > _SHOWN_SHAPES else ""
        parts.append(f"{len(shapes)} shape mismatches: {', '.join(shown[:_SHOWN_SHAPES])}{more}")
    if note:
        parts.append(note)
    remedies = []
    if shapes:
        remedies.append(
            "if the checkpoint was trained with other architecture options, give them in 'model_kwargs' "
            "of its config entry (e.g. {kernel_sizes: 11} or {num_classes: 21841}; remove wrong ones), or "
            "name the timm architecture it was trained as"
        )
    if only_source or only_target:
        fits = _fits_positionally(source, target)
        remedies.append(
            "the file holds the same number of tensors with the same shapes in the network's order, so "
            "it is probably another project's key layout of this architecture: set 'key_mapping: "
            "positional' in its config entry (then check its predictions)"
            if fits
            else "if it is another project's key layout with the tensors in the network's order, set "
            "'key_mapping: positional' (every shape is checked); otherwise convert its keys to timm's "
            "layout or name the timm architecture it belongs to"
        )
    return "; ".join(parts) + ". Remedies: " + "; or ".join(remedies)


def _architecture_filter(state_dict: dict, model: nn.Module) -> tuple[dict, str]:
    """``state_dict`` after the architecture's timm ``checkpoint_filter_fn`` (unchanged without
    one), and a note for messages when the filter failed."""
    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state_dict, ""
    try:
        return filter_fn(dict(state_dict), model), ""
    except Exception as err:  # a foreign layout can break any step of a filter; diagnose below
        return (
            state_dict,
            f"{module.__name__}.checkpoint_filter_fn could not convert it ({type(err).__name__})",
        )


def load_weights_file(
    model: nn.Module, path, key_mapping: str = "names", what: str | None = None, network: str = "the network"
) -> dict:
    """Load checkpoint file ``path`` into ``model`` strictly (in place; steps 1-5 above).

    Returns the sidecar facts: ``checkpoint_entry``, ``checkpoint_entries``, ``source_dtype``,
    ``key_mapping`` (and ``removed_prefixes`` where any).  Raises :class:`ConfigError` (key
    ``models``) when the file cannot be read or does not fit (one message, see
    :func:`mismatch_message`); ``positional`` is refused for ``.safetensors`` files, which do not
    keep the order in which the tensors were saved.
    """
    if key_mapping not in KEY_MAPPINGS:
        raise ValueError(f"key_mapping must be one of {KEY_MAPPINGS}, got {key_mapping!r}")
    path = Path(path)
    what = what or f"weights file {path}"
    if key_mapping == "positional" and path.suffix == ".safetensors":
        raise ConfigError(
            "models",
            f"key_mapping positional cannot be used with {path}: safetensors files store tensors sorted by "
            "type and name, not in the order of the network; use the original .pth/.bin file",
        )
    state_dict, info = read_state_dict(path)
    target = model.state_dict()
    note = ""
    if key_mapping == "positional":
        state_dict = positional_mapping(state_dict, target, what, network)
    else:
        state_dict, note = _architecture_filter(state_dict, model)
    if set(state_dict) != set(target) or any(state_dict[k].shape != target[k].shape for k in target):
        raise ConfigError("models", mismatch_message(state_dict, target, what, network, note))
    model.load_state_dict(state_dict, strict=True)
    return {**info, "key_mapping": key_mapping}
