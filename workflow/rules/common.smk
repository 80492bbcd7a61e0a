# Config validation, the model table and the targets of `rule all`.
import re

from snakemake.exceptions import WorkflowError

from masterkey.config import model_specs, validate_config
from masterkey.errors import UserError
from masterkey.weights import check_timm_name

try:
    validate_config(config)
    MODELS = {spec.name: spec for spec in model_specs(config)}
    for _spec in MODELS.values():
        if not _spec.is_demo:
            check_timm_name(_spec)
except UserError as err:
    raise WorkflowError(f"config error: {err}") from None

TIMM_MODELS = [name for name, spec in MODELS.items() if not spec.is_demo]
PUBLISHED_FILTERS = "resources/published/master_key_filters_8.txt"
FIT_METHODS = ["A", "B", "C1", "C2", "D1", "D2"]


def alternatives(names):
    """Regex matching exactly one of ``names`` (matches nothing for an empty list)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


wildcard_constraints:
    model=alternatives(MODELS),


def local_weights(wildcards):
    """The local checkpoint file of a timm model, when the config gives one."""
    weights = MODELS[wildcards.model].weights
    return [weights] if weights else []


def scalespace_targets():
    """Scale-space tables and figures: the published 8 and every model."""
    published = expand("results/published/{table}.{ext}", table=("spread", "fits"), ext=("csv", "md", "tex"))
    published += expand("results/figures/published_{name}.{ext}", name=("models", "spread"), ext=("png", "pdf"))
    per_model = expand("results/{stage}/{model}.parquet", stage=("fits", "spread"), model=MODELS)
    per_model += expand(
        "results/figures/{name}_{model}.{ext}",
        name=("fitted_scales", "residuals", "explained_share"),
        model=MODELS,
        ext=("png", "pdf"),
    )
    per_model += expand("results/tables/explained_share_{model}.{ext}", model=MODELS, ext=("csv", "md"))
    return published + per_model


def all_targets():
    """Everything `rule all` builds for the configured models."""
    kernels = expand("results/kernels/{model}.{ext}", model=MODELS, ext=("npz", "parquet"))
    return kernels + scalespace_targets() + clustering_targets()


# Clustering stage ([A], [Q]): validated settings, inputs and targets.
from snakemake.exceptions import WorkflowError

from masterkey.clustering import ClusteringSettings
from masterkey.errors import UserError

try:
    CLUSTERING = ClusteringSettings.from_config(config.get("clustering", {}))
except UserError as err:
    raise WorkflowError(f"config error: {err}") from None

CLUSTERING_INPUT = {
    "kernels": expand("results/kernels/{model}.npz", model=MODELS),
    "indices": expand("results/kernels/{model}.parquet", model=MODELS),
}
CLUSTERING_PARAMS = {
    "models": list(MODELS),
    "settings": CLUSTERING.as_dict(),
    "seed": config["seed"],
}


def clustering_targets():
    """Final outputs of the clustering stage for `rule all`."""
    keys = CLUSTERING.num_master_keys
    figures = [
        "cluster_prototypes",
        "latent_histograms",
        f"master_keys_{keys}",
        f"master_key_error_curve_{keys}",
        *(f"cluster_membership_{model}" for model in MODELS),
    ]
    return [
        "results/tables/classification.csv",
        "results/tables/classification.md",
        f"results/clustering/master_keys_{keys}.npy",
        f"results/tables/master_keys_{keys}_vs_published.csv",
        f"results/tables/master_keys_{keys}_vs_published.md",
        *expand("results/figures/{name}.{ext}", name=figures, ext=("pdf", "png")),
    ]


