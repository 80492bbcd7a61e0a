"""timm names and timm's hub: check a name, build a network, download its published weights.

Downloads go through timm's own hub mechanism (``timm.create_model(..., pretrained=True)``), which
honours the usual Hugging Face cache and offline variables (``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``) and torch hub's ``TORCH_HOME`` for the few checkpoints that are plain URLs.
"""

from __future__ import annotations

import difflib
import os
from contextlib import contextmanager

import timm
from torch import nn

from ..core.config import ModelSpec
from ..core.errors import ConfigError, UserError

__all__ = ["split_timm_name", "check_timm_name", "build_timm_model", "download_pretrained"]


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


def build_timm_model(spec: ModelSpec, **kwargs) -> nn.Module:
    """``timm.create_model(spec.name, **spec.model_kwargs, **kwargs)``; architecture options that
    timm rejects while building the network (``pretrained`` false) raise :class:`ConfigError`."""
    try:
        return timm.create_model(spec.name, **spec.model_kwargs, **kwargs)
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        if not spec.model_kwargs or kwargs.get("pretrained"):
            raise
        raise ConfigError(
            "models",
            f"model '{spec.name}': timm rejects model_kwargs {spec.model_kwargs}: {type(err).__name__}: "
            f"{str(err).splitlines()[0][:300]}",
        ) from None


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


def download_pretrained(spec: ModelSpec, hub_cache: str | None = None) -> nn.Module:
    """The timm network of ``spec`` with its published weights from the hub (or its cache).

    Raises :class:`ConfigError` (key ``models``): when the download fails, naming both remedies
    (fill the cache once, or give a local file); when the weights do not fit, with timm's lines.
    """
    try:
        with _hub_cache(hub_cache):
            return build_timm_model(spec, pretrained=True)
    except UserError:
        raise
    except Exception as err:  # timm/hub raise many types; classify, then re-raise clearly
        if _is_download_failure(err):
            raise ConfigError(
                "models",
                f"cannot download the weights of '{spec.name}' and they are not in the hub cache "
                f"({type(err).__name__}). Either run `snakemake resources/weights/{spec.name}.safetensors` "
                "once on a machine with network access, sharing its hub cache (HF_HOME / HF_HUB_CACHE or "
                "the config key 'hub_cache'), or download the checkpoint yourself and give its path as "
                f"'weights' in the config entry of '{spec.name}'",
            ) from None
        details = "; ".join(line.strip() for line in str(err).splitlines()[:4] if line.strip())
        raise ConfigError(
            "models",
            f"cannot load the downloaded weights of '{spec.name}': {type(err).__name__}: {details[:600]}; "
            "if the network was built with other architecture options, correct 'model_kwargs'",
        ) from None
