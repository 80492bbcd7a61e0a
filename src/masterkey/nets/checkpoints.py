"""Model weights: fetch checkpoints, save and load them with a JSON sidecar.

Every model of the workflow, downloaded, read from a file or trained, is stored the same way:

* ``{model}.safetensors`` - the full ``state_dict`` in timm's layout, as published (a
  reparameterisable network in its training-time form);
* ``{model}.json`` - the sidecar: ``name``, timm ``architecture``, ``tag`` and ``licence`` (only
  what is known: timm's record for a hub checkpoint, the package's declaration for package
  weights, nothing for a plain file), ``model_kwargs`` to rebuild the network with
  ``timm.create_model``, ``num_parameters``, ``num_depthwise_kernels`` (of the network as
  analysed, i.e. fused), ``sha256`` of the weights file, the timm ``pretrained_cfg``
  (preprocessing), its ``source`` and, for a file or package, ``weights_source`` (path, sha256,
  size, package and version) and how it was read (:mod:`.layouts`).

Without ``weights`` the checkpoint is downloaded through timm's hub mechanism (:mod:`.hub`); a
local file or ``package:<name>`` source (:mod:`.sources`) is read by
:func:`masterkey.nets.layouts.load_weights_file` into the network timm builds without weights.
:func:`load_checkpoint` returns the fused (deploy) form of reparameterisable networks
(:mod:`.deploy`), the form whose kernels act on the image.
"""

from __future__ import annotations

import copy
from pathlib import Path

import safetensors
import safetensors.torch
import timm
import torch
from torch import nn

from ..core.config import ModelSpec
from ..core.errors import StaleFileError, UserError
from ..core.io import atomic_paths, read_json, sha256_file, write_json
from .deploy import deploy_form, is_reparameterizable
from .depthwise import count_depthwise_kernels
from .hub import build_timm_model, check_timm_name, download_pretrained, split_timm_name
from .layouts import load_weights_file
from .sources import PACKAGE_PREFIX, resolve_weights

__all__ = [
    "CV2_LICENCE_NOTE",
    "split_timm_name",
    "check_timm_name",
    "check_model_spec",
    "create_pretrained_model",
    "check_finite",
    "model_metadata",
    "save_checkpoint",
    "save_trained",
    "fetch_weights",
    "read_metadata",
    "load_checkpoint",
]

CV2_LICENCE_NOTE = "ConvNeXt V2 weights are released under CC-BY-NC 4.0 (non-commercial use only)."
_PRETRAINED_CFG_KEYS = (
    "input_size",
    "test_input_size",
    "interpolation",
    "crop_pct",
    "test_crop_pct",
    "crop_mode",
    "mean",
    "std",
    "num_classes",
)
_HUB_CFG_KEYS = ("hf_hub_id", "url")  # where timm downloads from: recorded for hub checkpoints only


def check_model_spec(spec: ModelSpec) -> None:
    """Everything about a timm model entry that can be checked without loading weights (cheap
    enough for Snakemake's DAG building): the timm name (:func:`check_timm_name`), a
    ``package:`` source (installed, one checkpoint file), and ``model_kwargs`` (the network is
    built on the meta device).  Raises :class:`ConfigError` (key ``models``)."""
    check_timm_name(spec)
    if spec.weights is not None and spec.weights.startswith(PACKAGE_PREFIX):
        resolve_weights(spec)
    if spec.model_kwargs:
        with torch.device("meta"):
            build_timm_model(spec, pretrained=False)


def create_pretrained_model(spec: ModelSpec, hub_cache: str | None = None) -> tuple[nn.Module, dict]:
    """Build the timm model of ``spec`` with its pretrained weights (hub download, local file or
    package); returns ``(model, facts)``, the sidecar facts of the source (``source``, and for a
    file or package how it was read, ``licence`` and ``weights_source``).

    Raises :class:`ConfigError` (key ``models``) with the cause and the remedies when the weights
    cannot be downloaded, read or fitted to the network.
    """
    check_timm_name(spec)
    source = resolve_weights(spec)
    if source is not None:
        model = build_timm_model(spec, pretrained=False)
        options = f" with model_kwargs {spec.model_kwargs}" if spec.model_kwargs else ""
        network = f"timm '{spec.name}'{options}"
        facts = load_weights_file(model, source.path, spec.key_mapping, source.describe(), network)
        record = source.record()
        return model, {
            "source": source.describe(),
            **facts,
            "licence": source.licence,
            "weights_source": record,
        }
    return download_pretrained(spec, hub_cache), {"source": "timm hub"}


def check_finite(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor that holds NaN or inf (None when all are finite)."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return key
    return None


def model_metadata(
    model: nn.Module, name: str, source: str, model_kwargs: dict | None = None, *, hub: bool = False
) -> dict:
    """Sidecar fields that describe ``model`` (everything except the checksum).

    ``hub=True``: the weights are timm's published checkpoint, so its ``tag``, ``licence`` and hub
    address come from timm's ``pretrained_cfg``.  Otherwise the tag is the one ``name`` gives (if
    any), the licence is None (callers that know it set it) and only the preprocessing part of
    the architecture's ``pretrained_cfg`` is kept.  A reparameterisable network's
    ``num_depthwise_kernels`` counts its fused form (``num_depthwise_kernels_training_form``: as
    stored).
    """
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    architecture = cfg.get("architecture") or split_timm_name(name)[0]
    tag = cfg.get("tag") if hub else split_timm_name(name)[1]
    keys = _PRETRAINED_CFG_KEYS + (_HUB_CFG_KEYS if hub else ())
    pretrained_cfg = {k: list(cfg[k]) if isinstance(cfg[k], tuple) else cfg[k] for k in keys if k in cfg}
    if getattr(model, "num_classes", None) is not None:
        pretrained_cfg["num_classes"] = int(model.num_classes)
    meta = {
        "name": name,
        "architecture": architecture,
        "tag": tag,
        "timm_name": f"{architecture}.{tag}" if tag else architecture,
        "model_kwargs": dict(model_kwargs or {}),
        "licence": (cfg.get("license") or cfg.get("licence")) if hub else None,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "num_depthwise_kernels": count_depthwise_kernels(model),
        "reparameterizable": is_reparameterizable(model),
        "pretrained_cfg": pretrained_cfg,
        "source": source,
        "timm_version": timm.__version__,
        "torch_version": torch.__version__,
    }
    if meta["reparameterizable"]:
        meta["num_depthwise_kernels_training_form"] = meta["num_depthwise_kernels"]
        meta["num_depthwise_kernels"] = count_depthwise_kernels(deploy_form(copy.deepcopy(model))[0])
    if architecture.startswith("convnextv2"):
        meta["licence_note"] = CV2_LICENCE_NOTE
    return meta


def save_checkpoint(model: nn.Module, meta: dict, weights_path, meta_path) -> dict:
    """Write ``model.state_dict()`` as safetensors plus the JSON sidecar (both atomically).

    Rejects non-finite weights before anything is written.  Returns the
    sidecar dict including ``sha256``.
    """
    state_dict = model.state_dict()
    bad = check_finite(state_dict)
    if bad is not None:
        raise UserError(f"model '{meta.get('name')}': parameter '{bad}' holds NaN or inf; nothing written")
    seen: set[int] = set()
    tensors = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.data_ptr() in seen:  # safetensors refuses shared storage
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[key] = tensor
    with atomic_paths(weights_path, meta_path) as (weights_temp, meta_temp):
        safetensors.torch.save_file(tensors, str(weights_temp), metadata={"name": str(meta.get("name"))})
        meta = {**meta, "sha256": sha256_file(weights_temp)}
        write_json(meta, meta_temp)
    return meta


def save_trained(run, sidecar: dict, outputs: dict, extra_training: dict | None = None) -> dict:
    """Store a finished training run (the engine's ``TrainingRun``: ``model``, ``ema``, ``log``,
    ``summary``) like any checkpoint: its weight EMA where the recipe keeps one (the network
    ConvNeXt reports), else the model, with ``sidecar`` plus ``training`` (the run's summary and
    ``extra_training``) and ``weights`` (``ema`` or ``model``); the per-step log as CSV.
    ``outputs``: paths ``weights``, ``meta``, ``metrics``.  Returns the stored sidecar."""
    network = run.ema if run.ema is not None else run.model
    sidecar = {**sidecar, "training": {**run.summary, **(extra_training or {})},
               "weights": "ema" if run.ema is not None else "model"}  # fmt: skip
    with atomic_paths(outputs["metrics"]) as (temp,):
        run.log.to_csv(temp, index=False)
    return save_checkpoint(network, sidecar, outputs["weights"], outputs["meta"])


def fetch_weights(spec: ModelSpec, weights_path, meta_path, hub_cache: str | None = None) -> dict:
    """Download (or read the local file or package file of) a checkpoint and store it in the
    workflow's format (training-time form, timm's keys); returns the sidecar."""
    model, facts = create_pretrained_model(spec, hub_cache=hub_cache)
    hub = spec.weights is None
    meta = model_metadata(model, spec.name, facts["source"], spec.model_kwargs, hub=hub)
    meta.update(facts, published_top1=spec.published_top1)
    return save_checkpoint(model, meta, weights_path, meta_path)


def read_metadata(meta_path) -> dict:
    """The JSON sidecar of a weights file (:class:`StaleFileError` when missing or corrupt)."""
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or "timm_name" not in meta:
        raise StaleFileError(meta_path, "is not a weights sidecar of this workflow")
    return meta


def load_checkpoint(weights_path, meta_path, reparameterize: bool = True) -> tuple[nn.Module, dict]:
    """Rebuild the timm model from a saved checkpoint, verifying checksum and finiteness.

    Returns ``(model, meta)``, the model in eval mode on the CPU.  With ``reparameterize`` (the
    default) a reparameterisable network is fused into its deploy form (:mod:`.deploy`: the
    kernels it applies), ``meta['reparameterized']`` says whether that happened and a line is
    printed.  A missing, modified or unreadable file raises :class:`StaleFileError` naming it.
    """
    meta = read_metadata(meta_path)
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise StaleFileError(weights_path, "does not exist")
    digest = sha256_file(weights_path)
    if digest != meta.get("sha256"):
        raise StaleFileError(
            weights_path,
            f"has sha256 {digest[:12]}... but its sidecar {meta_path} records "
            f"{str(meta.get('sha256'))[:12]}...; the file is corrupt or was modified",
        )
    try:
        state_dict = safetensors.torch.load_file(str(weights_path), device="cpu")
    except (safetensors.SafetensorError, OSError) as err:
        raise StaleFileError(weights_path, f"is unreadable ({err})") from None
    bad = check_finite(state_dict)
    if bad is not None:
        raise StaleFileError(weights_path, f"holds NaN or inf in parameter '{bad}'")
    model = timm.create_model(meta["timm_name"], pretrained=False, **meta.get("model_kwargs", {}))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise StaleFileError(
            weights_path, f"does not match architecture {meta['timm_name']}: {str(err).splitlines()[0]}"
        ) from None
    model.eval()
    fused = False
    if reparameterize:
        before = count_depthwise_kernels(model)
        model, fused = deploy_form(model)
        if fused:
            print(
                f"{meta['name']}: fused into its deploy form (timm reparameterize_model): "
                f"{count_depthwise_kernels(model):,} depthwise kernels ({before:,} as stored, training form)"
            )
    return model, {**meta, "reparameterized": fused}
