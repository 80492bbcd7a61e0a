# Stage 5: replace the learned depthwise kernels by idealized / master key filters and
# evaluate without retraining (methods.md section 5; [B] Section 5, [Q]).
# The demo model is evaluated on its held-out split; timm models on imagenet_val,
# decoded once per preprocessing setting into EVAL_CACHE.
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


rule prepare_eval_cache:
    output:
        images=f"{EVAL_CACHE}/imagenet_val_{{key}}.npy",
        labels=f"{EVAL_CACHE}/imagenet_val_{{key}}.labels.npy",
        meta=f"{EVAL_CACHE}/imagenet_val_{{key}}.json",
    log:
        "logs/prepare_eval_cache/{key}.log",
    params:
        root=IMAGENET_VAL,
        preprocessing=lambda wildcards: preprocessing_with_key(wildcards.key),
    threads: REPLACEMENT["decode_workers"]
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/prepare_eval_cache.py"


rule replace_and_evaluate:
    input:
        unpack(variant_inputs),
    output:
        result="results/replacement/{model}/{variant}.json",
    log:
        "logs/replacement/{model}/{variant}.log",
    wildcard_constraints:
        variant=VARIANT_PATTERN,
    params:
        **EVAL_PARAMS,
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=60),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replace_and_evaluate.py"


rule replace_stages:
    input:
        unpack(stage_inputs),
        idealized=expand("results/replacement/{{model}}/idealized-{method}.json", method=FIT_METHODS),
    output:
        result="results/replacement/{model}/stages.json",
    log:
        "logs/replacement/{model}/stages.log",
    params:
        **EVAL_PARAMS,
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=120),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replace_stages.py"


rule finetune_frozen:
    input:
        unpack(variant_inputs),
    output:
        result="results/replacement/{model}/finetuned-{variant}.json",
    log:
        "logs/replacement/{model}/finetuned-{variant}.log",
    wildcard_constraints:
        variant=VARIANT_PATTERN,
    params:
        **EVAL_PARAMS,
        finetune=FINETUNE,
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=120),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/finetune_frozen.py"


rule replacement_table:
    input:
        variants=replacement_results(),
    output:
        multiext("results/tables/replacement", ".csv", ".md", ".tex"),
    log:
        "logs/replacement/table.log",
    params:
        kind="variants",
        variants=REPLACEMENT_VARIANTS + [f"finetuned-{v}" for v in FINETUNE["variants"]],
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement_tables.py"


rule replacement_stages_table:
    input:
        variants=expand("results/replacement/{model}/learned.json", model=EVAL_MODELS),
        stages=expand("results/replacement/{model}/stages.json", model=EVAL_MODELS),
    output:
        multiext("results/tables/replacement_stages", ".csv", ".md", ".tex"),
    log:
        "logs/replacement/stages_table.log",
    params:
        kind="stages",
        variants=None,
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement_tables.py"


rule figure_replacement_accuracy:
    input:
        table="results/tables/replacement.csv",
    output:
        png="results/figures/replacement_accuracy.png",
        pdf="results/figures/replacement_accuracy.pdf",
    log:
        "logs/figures/replacement_accuracy.log",
    params:
        figure="replacement_accuracy",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement_figure.py"


rule figure_replacement_stages:
    input:
        table="results/tables/replacement_stages.csv",
    output:
        png="results/figures/replacement_stages.png",
        pdf="results/figures/replacement_stages.pdf",
    log:
        "logs/figures/replacement_stages.log",
    params:
        figure="replacement_stages",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement_figure.py"
