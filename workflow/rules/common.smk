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
# Categories of `snakemake --report` (captions: workflow/report/*.rst).
CATEGORY_DEMO = "0. Demo model"
CATEGORY_PUBLISHED = "1. Published 8 filters ([Q], [B])"
CATEGORY_SCALESPACE = "2. Scale-space models per model ([B])"
CATEGORY_CLUSTERING = "3. Clustering ([A])"
CATEGORY_MASTER_KEYS = "4. Master key filters ([Q])"
CATEGORY_REPLACEMENT = "5. Replacement ([B] Section 5, [Q])"
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
    per_model += expand("results/tables/explained_share_{model}.{ext}", model=MODELS, ext=("csv", "md", "tex"))
    return published + per_model


def all_targets():
    """Everything `rule all` builds for the configured models."""
    kernels = expand("results/kernels/{model}.{ext}", model=MODELS, ext=("npz", "parquet"))
    return kernels + scalespace_targets() + clustering_targets() + replacement_targets()


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
        *expand("results/tables/classification.{ext}", ext=("csv", "md", "tex")),
        f"results/clustering/master_keys_{keys}.npy",
        *expand(f"results/tables/master_keys_{keys}_vs_published.{{ext}}", ext=("csv", "md", "tex")),
        *expand("results/figures/{name}.{ext}", name=figures, ext=("pdf", "png")),
    ]


# Replacement stage (methods.md section 5): variants, evaluated models, inputs and targets.
import sys

from masterkey.errors import UserError
from masterkey.replacement import default_variants, parse_variant

REPLACEMENT = config["replacement"]
try:
    REPLACEMENT_VARIANTS = REPLACEMENT["variants"] or default_variants(CLUSTERING.num_master_keys)
    for _variant in REPLACEMENT_VARIANTS:
        parse_variant(_variant)
    if "learned" not in REPLACEMENT_VARIANTS:
        REPLACEMENT_VARIANTS = ["learned", *REPLACEMENT_VARIANTS]
    FINETUNE = REPLACEMENT["finetune"]
    for _variant in FINETUNE["variants"]:
        parse_variant(_variant)
except UserError as err:
    raise WorkflowError(f"config error: replacement: {err}") from None

# Every variant name (masterkey.replacement.parse_variant); excludes "stages" and "finetuned-*".
VARIANT_PATTERN = r"learned|random|shuffled|(stage\d+-)?idealized-[A-Z]\d?|masterkey-(\d+|published)"
IMAGENET_VAL = config["imagenet_val"]
EVAL_CACHE = (config["eval_cache"] or "results/eval_cache").rstrip("/")
try:
    from masterkey.evaluation import IMAGENET_1K_CLASSES, classifier_classes

    NON_1K_MODELS = [name for name in TIMM_MODELS if classifier_classes(name) != IMAGENET_1K_CLASSES]
except UserError as err:
    raise WorkflowError(f"config error: {err}") from None
EVAL_MODELS = [
    name for name, spec in MODELS.items() if spec.is_demo or (IMAGENET_VAL and name not in NON_1K_MODELS)
]
if IMAGENET_VAL and NON_1K_MODELS:
    print(
        f"replacement: {len(NON_1K_MODELS)} model(s) without an ImageNet-1k head (in22k/in12k/fcmae) "
        "are analysed but not evaluated",
        file=sys.stderr,
    )
FINETUNE_MODELS = [name for name, spec in MODELS.items() if spec.is_demo] if FINETUNE["enabled"] else []
if TIMM_MODELS and not IMAGENET_VAL:
    print(
        f"replacement: imagenet_val is not set - the ImageNet-1k evaluation of {len(TIMM_MODELS)} timm "
        "model(s) is left out (set imagenet_val: /path/to/ILSVRC2012/val to include it)",
        file=sys.stderr,
    )

_PREPROCESSING = {}


def preprocessing_key(model):
    """Cache key of a timm model's evaluation preprocessing (computed once per model)."""
    from masterkey.evaluation import preprocessing_for_model

    if model not in _PREPROCESSING:
        try:
            _PREPROCESSING[model] = preprocessing_for_model(model)
        except UserError as err:
            raise WorkflowError(f"config error: {err}") from None
    return _PREPROCESSING[model].key()


def preprocessing_with_key(key):
    """The preprocessing settings (dict) of any configured timm model whose cache key is ``key``."""
    for model in TIMM_MODELS:
        preprocessing_key(model)
    for preprocessing in _PREPROCESSING.values():
        if preprocessing.key() == key:
            return preprocessing.as_dict()
    raise WorkflowError(f"no configured model has evaluation preprocessing {key}")


def eval_cache_input(model):
    """The cached ImageNet validation images a timm model needs (nothing for the demo)."""
    if MODELS[model].is_demo:
        return {}
    return {"eval_cache": f"{EVAL_CACHE}/imagenet_val_{preprocessing_key(model)}.npy"}


def inputs_for(model, variant):
    """Inputs of one model and variant: checkpoint, kernels, and what the variant is built from."""
    variant = parse_variant(variant)
    inputs = {
        "weights": f"resources/weights/{model}.safetensors",
        "meta": f"resources/weights/{model}.json",
        "kernels": f"results/kernels/{model}.npz",
        "index": f"results/kernels/{model}.parquet",
        **eval_cache_input(model),
    }
    if variant.kind == "idealized":
        inputs["fits"] = f"results/fits/{model}.parquet"
    elif variant.kind == "masterkey" and variant.num_keys is None:
        inputs["published"] = PUBLISHED_FILTERS
    elif variant.kind == "masterkey":
        inputs["master_keys"] = f"results/clustering/master_keys_{variant.num_keys}.npy"
    return inputs


def variant_inputs(wildcards):
    return inputs_for(wildcards.model, wildcards.variant)


def stage_inputs(wildcards):
    """Inputs of the per-stage replacement: those of any idealized variant (fits included)."""
    return inputs_for(wildcards.model, "idealized-D1")


def replacement_targets():
    """Replacement tables and figures for `rule all` (empty when no model can be evaluated)."""
    if not EVAL_MODELS:
        return []
    targets = expand("results/tables/replacement.{ext}", ext=("csv", "md", "tex"))
    targets += expand("results/figures/replacement_accuracy.{ext}", ext=("png", "pdf"))
    if REPLACEMENT["stages"]:
        targets += expand("results/tables/replacement_stages.{ext}", ext=("csv", "md", "tex"))
        targets += expand("results/figures/replacement_stages.{ext}", ext=("png", "pdf"))
    return targets


def replacement_results(with_finetuned=True):
    results = expand("results/replacement/{model}/{variant}.json", model=EVAL_MODELS, variant=REPLACEMENT_VARIANTS)
    if with_finetuned:
        results += expand(
            "results/replacement/{model}/finetuned-{variant}.json", model=FINETUNE_MODELS, variant=FINETUNE["variants"]
        )
    return results


EVAL_PARAMS = {
    "demo": config["demo"],
    "seed": config["seed"],
    "batch_size": REPLACEMENT["batch_size"],
    "max_images": REPLACEMENT["max_images"],
}
