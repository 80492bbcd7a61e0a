"""Model weights: fetch timm checkpoints, save and load them with a JSON sidecar.

Every model of the workflow, downloaded or trained, is stored the same way:

* ``{model}.safetensors`` - the full ``state_dict``;
* ``{model}.json`` - the sidecar: ``name``, timm ``architecture`` and ``tag``,
  ``model_kwargs`` to rebuild the network with ``timm.create_model``,
  ``licence``, ``num_parameters``, ``num_depthwise_kernels``, ``sha256`` of the
  weights file, the timm ``pretrained_cfg`` (preprocessing) and its ``source``.

Downloads go through timm's own hub mechanism (``timm.create_model(...,
pretrained=True)``), which honours the usual Hugging Face cache and offline
variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``) and torch hub's
``TORCH_HOME`` for the few checkpoints that are plain URLs.  A local file given
in the config is loaded through the same path (timm's ``pretrained_cfg``
``file`` entry).
"""

from __future__ import annotations

import difflib
import os
from contextlib import contextmanager
from pathlib import Path

import safetensors
import safetensors.torch
import timm
import torch
from torch import nn

from ..core.config import ModelSpec
from ..core.errors import ConfigError, StaleFileError, UserError
from ..core.io import atomic_paths, read_json, sha256_file, write_json
from .depthwise import count_depthwise_kernels

__all__ = [
    "CV2_LICENCE_NOTE",
    "split_timm_name",
    "check_timm_name",
    "create_pretrained_model",
    "check_finite",
    "model_metadata",
    "save_checkpoint",
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
    "hf_hub_id",
    "url",
)


def split_timm_name(name: str) -> tuple[str, str | None]:
    """``"convnext_tiny.fb_in1k"`` -> ``("convnext_tiny", "fb_in1k")``; no tag -> ``(name, None)``."""
    architecture, _, tag = name.partition(".")
    return architecture, (tag or None)


def check_timm_name(spec: ModelSpec) -> None:
    """Raise :class:`ConfigError` (key ``models``) unless ``spec.name`` is a timm checkpoint (or,
    with a local weights file, at least a timm architecture); the message lists close matches."""
    architecture, tag = split_timm_name(spec.name)
    known = timm.list_pretrained()
    if spec.name in known:
        return
    if spec.weights is not None and timm.is_model(architecture) and tag is None:
        return
    if tag is None and timm.is_model(architecture):
        tags = [n for n in known if n.startswith(architecture + ".")]
        raise ConfigError(
            "models",
            f"model '{spec.name}' names an architecture, not a checkpoint; use one of: {', '.join(tags)}"
            if tags
            else f"timm has no pretrained checkpoint for '{spec.name}'; give a local file in 'weights'",
        )
    close = difflib.get_close_matches(spec.name, known, n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ConfigError(
        "models", f"unknown timm model '{spec.name}'{hint} (see timm.list_pretrained() for all checkpoints)"
    )


@contextmanager
def _hub_cache(hub_cache: str | None):
    """Temporarily point ``HF_HUB_CACHE`` at ``hub_cache`` (no-op for None)."""
    if hub_cache is None:
        yield
        return
    previous = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(hub_cache)
    try:
        import huggingface_hub.constants as hub_constants

        old_constant = hub_constants.HF_HUB_CACHE
        hub_constants.HF_HUB_CACHE = str(hub_cache)
        yield
    finally:
        hub_constants.HF_HUB_CACHE = old_constant
        if previous is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = previous


def _is_download_failure(err: BaseException) -> bool:
    """True when ``err`` (or its cause chain) says a file could not be fetched or found in the cache."""
    names = {
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "ConnectionError",
        "ConnectError",
        "ProxyError",
        "Timeout",
        "URLError",
        "HfHubHTTPError",
        "RepositoryNotFoundError",
        "gaierror",
    }
    while err is not None:
        if type(err).__name__ in names or any(c.__name__ in names for c in type(err).__mro__):
            return True
        err = err.__cause__ or err.__context__
    return False


def create_pretrained_model(spec: ModelSpec, hub_cache: str | None = None) -> nn.Module:
    """Build the timm model of ``spec`` with its pretrained weights (download or local file)."""
    check_timm_name(spec)
    kwargs = {}
    if spec.weights is not None:
        path = Path(spec.weights)
        if not path.is_file():
            raise ConfigError("models", f"model '{spec.name}': local weights file {path} does not exist")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path.resolve())}
    try:
        with _hub_cache(hub_cache):
            return timm.create_model(spec.name, pretrained=True, **kwargs)
    except UserError:
        raise
    except Exception as err:  # timm/hub raise many types; classify, then re-raise clearly
        if spec.weights is None and _is_download_failure(err):
            raise ConfigError(
                "models",
                f"cannot download the weights of '{spec.name}' and they are not in the hub cache "
                f"({type(err).__name__}). Either run `snakemake resources/weights/{spec.name}.safetensors` "
                "once on a machine with network access, sharing its hub cache (HF_HOME / HF_HUB_CACHE or "
                "the config key 'hub_cache'), or download the checkpoint yourself and give its path as "
                f"'weights' in the config entry of '{spec.name}'",
            ) from None
        source = spec.weights or "the downloaded checkpoint"
        raise ConfigError(
            "models",
            f"cannot load the weights of '{spec.name}' from {source}: {type(err).__name__}: "
            f"{str(err).splitlines()[0][:300]}; check that the file is a checkpoint of this architecture",
        ) from None


def check_finite(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor that holds NaN or inf (None when all are finite)."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return key
    return None


def model_metadata(model: nn.Module, name: str, source: str, model_kwargs: dict | None = None) -> dict:
    """Sidecar fields that describe ``model`` (everything except the checksum)."""
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    architecture = cfg.get("architecture") or split_timm_name(name)[0]
    licence = cfg.get("license") or cfg.get("licence")
    meta = {
        "name": name,
        "architecture": architecture,
        "tag": cfg.get("tag"),
        "timm_name": f"{architecture}.{cfg['tag']}" if cfg.get("tag") else architecture,
        "model_kwargs": dict(model_kwargs or {}),
        "licence": licence,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "num_depthwise_kernels": count_depthwise_kernels(model),
        "pretrained_cfg": {
            k: list(cfg[k]) if isinstance(cfg[k], tuple) else cfg[k] for k in _PRETRAINED_CFG_KEYS if k in cfg
        },
        "source": source,
        "timm_version": timm.__version__,
        "torch_version": torch.__version__,
    }
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


def fetch_weights(spec: ModelSpec, weights_path, meta_path, hub_cache: str | None = None) -> dict:
    """Download (or read the local file of) a timm checkpoint and store it in the workflow's format."""
    model = create_pretrained_model(spec, hub_cache=hub_cache)
    source = f"local file {spec.weights}" if spec.weights else "timm hub"
    meta = model_metadata(model, spec.name, source)
    return save_checkpoint(model, meta, weights_path, meta_path)


def read_metadata(meta_path) -> dict:
    """The JSON sidecar of a weights file (:class:`StaleFileError` when missing or corrupt)."""
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or "timm_name" not in meta:
        raise StaleFileError(meta_path, "is not a weights sidecar of this workflow")
    return meta


def load_checkpoint(weights_path, meta_path) -> tuple[nn.Module, dict]:
    """Rebuild the timm model from a saved checkpoint, verifying checksum and finiteness.

    Returns ``(model, meta)``, the model in eval mode on the CPU.  A missing, modified or
    unreadable file raises :class:`StaleFileError` naming it.
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
    return model, meta
