# Stage "replacement" ([B] Section 5, [Q]; masterkey.replacement; docs/methods.md section 5):
# replace the learned depthwise kernels by idealized / master key filters and evaluate without
# retraining. The demo model is evaluated on its held-out split; timm models on imagenet_val,
# decoded once per preprocessing setting into EVAL_CACHE. Variant names, their grammar and the
# inputs each needs come from the library's variant registry.
import sys

from masterkey.data.preprocessing import (
    IMAGENET_1K_CLASSES,
    classifier_classes,
    preprocessing_for_model,
    preprocessing_with_key,
)
from masterkey.replacement.settings import ReplacementSettings
from masterkey.replacement.variants import (
    FINETUNED_PREFIX,
    idealized_name,
    variant_input_paths,
    variant_pattern,
)
from masterkey.scalespace.fitting import METHODS

CATEGORY_REPLACEMENT = "5. Replacement ([B] Section 5, [Q])"
IMAGENET_VAL = config["imagenet_val"]
EVAL_CACHE = config["eval_cache"].rstrip("/")
try:
    REPLACEMENT = ReplacementSettings.from_config(config)
    VARIANTS = REPLACEMENT.variant_names(CLUSTERING.num_master_keys)
    FINETUNE = REPLACEMENT.finetune
    FINETUNED = FINETUNE.result_names()
    NON_1K_MODELS = [name for name in TIMM_MODELS if classifier_classes(name) != IMAGENET_1K_CLASSES]
    # the decoded ImageNet images a model is evaluated on (one cache per pixel preprocessing; the
    # demo has its own held-out split)
    EVAL_CACHE_INPUT = {
        name: {"eval_cache": f"{EVAL_CACHE}/imagenet_val_{preprocessing_for_model(name).key()}.npy"}
        for name in TIMM_MODELS
    } | {name: {} for name in DEMO_MODELS}
except UserError as err:
    raise config_error(err) from None

EVAL_MODELS = [name for name in MODELS if name in DEMO_MODELS or (IMAGENET_VAL and name not in NON_1K_MODELS)]
FINETUNE_MODELS = DEMO_MODELS if FINETUNE.enabled else []
if IMAGENET_VAL and NON_1K_MODELS:
    print(
        f"replacement: {len(NON_1K_MODELS)} model(s) without an ImageNet-1k head (in22k/in12k/fcmae) "
        "are analysed but not evaluated",
        file=sys.stderr,
    )
if TIMM_MODELS and not IMAGENET_VAL:
    print(
        f"replacement: imagenet_val is not set - the ImageNet-1k evaluation of {len(TIMM_MODELS)} timm "
        "model(s) is left out (set imagenet_val: /path/to/ILSVRC2012/val to include it)",
        file=sys.stderr,
    )
EVAL_PARAMS = {
    "demo": DEMO.as_dict(),
    "seed": config["seed"],
    "batch_size": REPLACEMENT.batch_size,
    "max_images": REPLACEMENT.max_images,
}
# The path of each input a variant may need (masterkey.replacement.variants.INPUTS; the registry
# says which one a variant needs).
VARIANT_INPUTS = {
    "fits": "results/fits/{model}.parquet",
    "published": PUBLISHED_FILTERS,
    "master_keys": "results/clustering/master_keys_{num_keys}.npy",
}
REPLACEMENT_RESULTS = [
    *expand("results/replacement/{model}/{variant}.json", model=EVAL_MODELS, variant=VARIANTS),
    *expand("results/replacement/{model}/{variant}.json", model=FINETUNE_MODELS, variant=FINETUNED),
]
REPLACEMENT_TABLES = ["replacement", "replacement_stages"] if REPLACEMENT.stages else ["replacement"]
REPLACEMENT_FIGURES = (
    ["replacement_accuracy", "replacement_stages"] if REPLACEMENT.stages else ["replacement_accuracy"]
)
# Nothing when no model can be evaluated.
REPLACEMENT_TARGETS = [
    *expand("results/tables/{name}.{ext}", name=REPLACEMENT_TABLES if EVAL_MODELS else [], ext=TABLE_EXTS),
    *expand("results/figures/{name}.{ext}", name=REPLACEMENT_FIGURES if EVAL_MODELS else [], ext=FIGURE_EXTS),
]


rule prepare_eval_cache:
    output:
        images=f"{EVAL_CACHE}/imagenet_val_{{key}}.npy",
        labels=f"{EVAL_CACHE}/imagenet_val_{{key}}.labels.npy",
        meta=f"{EVAL_CACHE}/imagenet_val_{{key}}.json",
    log:
        "logs/replacement/prepare_eval_cache/{key}.log",
    conda:
        "../envs/masterkey.yaml"
    threads: REPLACEMENT.decode_workers
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        root=IMAGENET_VAL,
        preprocessing=lambda wildcards: preprocessing_with_key(TIMM_MODELS, wildcards.key).as_dict(),
    script:
        "../../scripts/replacement/prepare_eval_cache.py"


rule replace_and_evaluate:
    input:
        unpack(lambda w: variant_input_paths(w.variant, VARIANT_INPUTS, model=w.model)),
        unpack(lambda w: EVAL_CACHE_INPUT[w.model]),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    output:
        result="results/replacement/{model}/{variant}.json",
    log:
        "logs/replacement/replace_and_evaluate/{model}/{variant}.log",
    wildcard_constraints:
        variant=variant_pattern(),
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=60),
    params:
        **EVAL_PARAMS,
    script:
        "../../scripts/replacement/replace_and_evaluate.py"


rule replace_stages:
    input:
        unpack(lambda w: EVAL_CACHE_INPUT[w.model]),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
        fits="results/fits/{model}.parquet",
        idealized=expand(
            "results/replacement/{{model}}/{variant}.json", variant=[idealized_name(m) for m in METHODS]
        ),
    output:
        result="results/replacement/{model}/stages.json",
    log:
        "logs/replacement/replace_stages/{model}.log",
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=120),
    params:
        **EVAL_PARAMS,
    script:
        "../../scripts/replacement/replace_stages.py"


rule finetune_frozen:
    input:
        unpack(lambda w: variant_input_paths(w.variant, VARIANT_INPUTS, model=w.model)),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    output:
        result=f"results/replacement/{{model}}/{FINETUNED_PREFIX}{{variant}}.json",
    log:
        "logs/replacement/finetune_frozen/{model}/{variant}.log",
    wildcard_constraints:
        variant=variant_pattern(),
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=120),
    params:
        **EVAL_PARAMS,
        finetune=FINETUNE.as_dict(),
    script:
        "../../scripts/replacement/finetune_frozen.py"


rule table_replacement:
    input:
        variants=REPLACEMENT_RESULTS,
    output:
        report(
            "results/tables/replacement.csv",
            caption="../report/replacement_table.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "replacement accuracy", "paper": "[B] Sec. 5, [Q]", "kind": "table"},
        ),
        "results/tables/replacement.md",
        "results/tables/replacement.tex",
    log:
        "logs/replacement/table_replacement.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        variants=VARIANTS + FINETUNED,
    script:
        "../../scripts/replacement/table_replacement.py"


rule table_replacement_stages:
    input:
        learned=expand("results/replacement/{model}/learned.json", model=EVAL_MODELS),
        stages=expand("results/replacement/{model}/stages.json", model=EVAL_MODELS),
    output:
        report(
            "results/tables/replacement_stages.csv",
            caption="../report/replacement_stages_table.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "one stage replaced", "paper": "[B] Sec. 5", "kind": "table"},
        ),
        "results/tables/replacement_stages.md",
        "results/tables/replacement_stages.tex",
    log:
        "logs/replacement/table_replacement_stages.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement/table_replacement_stages.py"


rule figure_replacement_accuracy:
    input:
        table="results/tables/replacement.csv",
    output:
        png=report(
            "results/figures/replacement_accuracy.png",
            caption="../report/replacement_accuracy.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "accuracy drop per variant", "paper": "[B] Sec. 5, [Q]", "kind": "figure"},
        ),
        pdf="results/figures/replacement_accuracy.pdf",
    log:
        "logs/replacement/figure_replacement_accuracy.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement/figure_replacement_accuracy.py"


rule figure_replacement_stages:
    input:
        table="results/tables/replacement_stages.csv",
    output:
        png=report(
            "results/figures/replacement_stages.png",
            caption="../report/replacement_stages.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "accuracy drop per stage", "paper": "[B] Sec. 5", "kind": "figure"},
        ),
        pdf="results/figures/replacement_stages.pdf",
    log:
        "logs/replacement/figure_replacement_stages.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement/figure_replacement_stages.py"
