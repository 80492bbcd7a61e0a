"""Settings of the NIFF stage: the ``niff`` config section (keys and defaults: the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import DEMO_MODEL, ModelSpec, Settings
from ..core.errors import ConfigError

__all__ = ["NiffRun", "NiffSettings", "DATASETS"]

DATASETS = ("demo", "cifar10", "imagenet")
"""Where a run trains: the embedded demo crops (CPU, the demo recipe), CIFAR-10 (config
``cifar10``) or ImageNet-1k (config ``imagenet_train``, evaluated on ``imagenet_val``)."""


@dataclass(frozen=True)
class NiffRun(Settings):
    """One ``niff.runs`` entry: a network trained from scratch by the workflow.

    ``name`` names its checkpoint ``resources/weights/{name}.safetensors`` (and the model of that
    name when ``models`` lists it); ``architecture`` a timm name, ``niff_<ConvNeXt>`` or a plain
    one; ``dataset`` one of :data:`DATASETS`; ``baseline`` the plain network it is compared with
    (a model or another run; None: none); ``input_size`` the training and analysis resolution
    (None: the demo's crop size, 32 for CIFAR-10, the architecture's for ImageNet); ``recipe`` a
    :class:`~masterkey.training.recipe.Recipe` mapping (None for the demo: the demo recipe).
    """

    name: str
    architecture: str
    dataset: str = "demo"
    baseline: str | None = None
    input_size: int | None = None
    recipe: dict | None = None


@dataclass(frozen=True)
class NiffSettings(Settings, section="niff"):
    """The ``niff`` config section: the NIFF layer's options and the training runs ([D])."""

    coordinates: str = "index"
    padding: str = "circular"
    route: str = "rfft"
    crop: int = 7
    runs: tuple[dict, ...] = ()

    def model_kwargs(self) -> dict:
        """``timm.create_model`` options of every ``niff_*`` architecture."""
        return {"niff_coordinates": self.coordinates, "niff_padding": self.padding, "niff_route": self.route}

    def run_list(self, models=()) -> list[NiffRun]:
        """The runs as :class:`NiffRun`, checked against each other and the configured ``models``
        (:class:`~masterkey.core.config.ModelSpec` or names).  Raises ``ConfigError`` naming the key for: a
        duplicate run name or the demo's; a listed model named like a run but given weights,
        model_kwargs or a key_mapping; a non-demo run without a recipe, a demo run with one, an
        ImageNet run with an ``input_size`` (it trains at the architecture's size); a baseline that
        is neither a model nor a run, or is a NIFF network; an unknown architecture."""
        import timm

        from ..nets.niff_convnext import is_niff_architecture

        specs = {spec.name: spec for spec in (ModelSpec(name=m) if isinstance(m, str) else m for m in models)}
        runs = [NiffRun.from_section(entry) for entry in self.runs]
        names = [run.name for run in runs]
        architectures = {run.name: run.architecture for run in runs}
        for i, run in enumerate(runs):
            key = f"niff.runs[{i}]"
            if run.name == DEMO_MODEL:
                raise ConfigError(f"{key}.name", f"'{run.name}' is the demo model's name; choose another")
            if run.name in names[:i]:
                raise ConfigError(f"{key}.name", f"'{run.name}' is used twice; give each run its own name")
            spec = specs.get(run.name)
            if spec is not None and (spec.weights or spec.model_kwargs or spec.key_mapping != "names"):
                why = f"'{run.name}' is trained by niff.runs[{i}]: no weights, model_kwargs or key_mapping"
                raise ConfigError("models", why)
            if not (is_niff_architecture(run.architecture) or timm.is_model(run.architecture)):
                why = f"'{run.architecture}' is neither a timm architecture nor niff_<timm ConvNeXt / V2>"
                raise ConfigError(f"{key}.architecture", why)
            if run.dataset != "demo" and not run.recipe:
                raise ConfigError(f"{key}.recipe", f"run '{run.name}' trains on {run.dataset}: give a recipe")
            if run.dataset == "demo" and run.recipe:
                why = "demo runs train with the demo network's recipe (the demo section); remove the recipe"
                raise ConfigError(f"{key}.recipe", why)
            if run.dataset == "imagenet" and run.input_size:
                raise ConfigError(f"{key}.input_size", "ImageNet runs train at the architecture's input size")
            if run.baseline and run.baseline not in specs and run.baseline not in names:
                why = f"'{run.baseline}' is neither a configured model nor a run"
                raise ConfigError(f"{key}.baseline", why)
            if run.baseline and is_niff_architecture(architectures.get(run.baseline, run.baseline)):
                why = f"'{run.baseline}' is a NIFF network; the baseline is the plain one"
                raise ConfigError(f"{key}.baseline", why)
        return runs
