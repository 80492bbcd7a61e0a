# Stage "replacement" ([B] Section 5, [Q]; masterkey.replacement; docs/methods.md section 5):
# replace the learned depthwise kernels by idealized / master key filters and evaluate without
# retraining. The demo model is evaluated on its held-out split; timm models on imagenet_val,
# decoded once per preprocessing setting into EVAL_CACHE; every model with a classifier also on the
# natural-image set (photographs shipped inside installed packages), where only fidelity to the
# unmodified network is measured. Results: results/replacement/{model}/{dataset}/{variant}.json,
# beside the unmodified network's reference logits of that set. Variant names, their grammar and
# the inputs each needs come from the library's variant registry.
import sys

from masterkey.data.preprocessing import (
    IMAGENET_1K_CLASSES,
    classifier_classes,
    preprocessing_for_model,
    preprocessing_with_key,
)
from masterkey.replacement.evaluation import DATASETS, HELDOUT, NATURAL
from masterkey.replacement.evaluation import IMAGENET_VAL as IMAGENET_SET
from masterkey.data.training_sets import require_dataset
from masterkey.replacement.finetune import frozen_keys_name
from masterkey.replacement.settings import FrozenKeysSettings, ReplacementSettings
from masterkey.training.engine import RunSettings
from masterkey.replacement.variants import (
    is_finetune_only,
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
    FINETUNE_VARIANTS = FINETUNE.variant_names()
    FROZEN = FrozenKeysSettings.from_config(config)
    RUN = RunSettings.from_config(config)
    CLASSES = {name: classifier_classes(name) for name in TIMM_MODELS}
    NON_1K_MODELS = [name for name in TIMM_MODELS if CLASSES[name] != IMAGENET_1K_CLASSES]
    # the decoded ImageNet images a model is evaluated on (one cache per pixel preprocessing)
    EVAL_CACHE_INPUT = {
        name: {"eval_cache": f"{EVAL_CACHE}/imagenet_val_{preprocessing_for_model(name).key()}.npy"}
        for name in TIMM_MODELS
    }
except UserError as err:
    raise config_error(err) from None

# The sets each model is evaluated on: its labelled one where it has one (the demo's held-out split;
# imagenet_val for 1k heads when set), then the natural set (every model with a classifier head).
LABELLED_SET = {name: [HELDOUT] for name in DEMO_MODELS} | {
    name: [IMAGENET_SET] if IMAGENET_VAL and name not in NON_1K_MODELS else [] for name in TIMM_MODELS
}
HEADLESS_MODELS = [name for name in TIMM_MODELS if CLASSES[name] == 0]  # no logits to compare
EVAL_SETS = {
    name: [*LABELLED_SET[name], NATURAL]
    for name in [*DEMO_MODELS, *TIMM_MODELS]
    if name not in HEADLESS_MODELS
}
EVAL_MODELS = list(EVAL_SETS)
# Input function: the ImageNet cache of a model's imagenet_val jobs (the other sets are built in the job).
eval_set_input = lambda w: EVAL_CACHE_INPUT[w.model] if w.dataset == IMAGENET_SET else {}
if IMAGENET_VAL and NON_1K_MODELS:
    print(
        f"replacement: {len(NON_1K_MODELS)} model(s) without an ImageNet-1k head (in22k/in12k/fcmae) "
        "are not evaluated on imagenet_val (those with a head: fidelity on the natural-image set only)",
        file=sys.stderr,
    )
if TIMM_MODELS and not IMAGENET_VAL:
    print(
        f"replacement: imagenet_val is not set - the ImageNet-1k evaluation of {len(TIMM_MODELS)} timm "
        "model(s) is left out, the natural-image fidelity kept (set imagenet_val: /path/to/ILSVRC2012/val "
        "to include it)",
        file=sys.stderr,
    )
EVAL_PARAMS = {
    "demo": DEMO.as_dict(),
    "seed": config["seed"],
    "batch_size": REPLACEMENT.batch_size,
    "max_images": REPLACEMENT.max_images,
    "fidelity_images": REPLACEMENT.fidelity_images,
}
# The path of each input a variant may need (masterkey.replacement.variants.INPUTS; the registry
# says which one a variant needs).
VARIANT_INPUTS = {
    "fits": "results/fits/{model}.parquet",
    "published": PUBLISHED_FILTERS,
    "master_keys": "results/clustering/master_keys_{num_keys}.npz",
}
RESULT = "results/replacement/{model}/{dataset}/{variant}.json"
REFERENCE = "results/replacement/{model}/{dataset}/reference_logits.npy"
EVAL_PAIRS = [(model, dataset) for model, sets in EVAL_SETS.items() for dataset in sets]
# Training with frozen depthwise filters: the demo model on its crops with the demo's recipe;
# timm models on imagenet_train with the configured recipe (left out, with one line, without).
IMAGENET_TRAIN = config["imagenet_train"]
FINETUNE_MODELS = [
    m
    for m in (FINETUNE.models or [*DEMO_MODELS, *TIMM_MODELS])
    if FINETUNE.enabled and (m in DEMO_MODELS or (IMAGENET_TRAIN and IMAGENET_VAL and FINETUNE.recipe))
]
FROZEN_MODELS = [
    m
    for m in (FROZEN.models or DEMO_MODELS)
    if FROZEN.enabled and (m in DEMO_MODELS or (IMAGENET_TRAIN and IMAGENET_VAL and FROZEN.recipe))
]
FROZEN_KEYS_K = FROZEN.num_keys or CLUSTERING.num_master_keys
FROZEN_RUNS = [frozen_keys_name(keys, FROZEN_KEYS_K) for keys in FROZEN.keys]
_left_out = sorted(
    {m for m in (FINETUNE.models or TIMM_MODELS) if FINETUNE.enabled and m not in FINETUNE_MODELS}
    | {m for m in (FROZEN.models or []) if FROZEN.enabled and m not in FROZEN_MODELS}
)
if _left_out:
    print(
        f"replacement: the training jobs of {len(_left_out)} timm model(s) are left out: they need "
        "imagenet_train and imagenet_val (set imagenet_train: /path/to/ILSVRC2012/train and "
        "imagenet_val: /path/to/ILSVRC2012/val) and a recipe (replacement.finetune.recipe, "
        "frozen_keys.recipe)",
        file=sys.stderr,
    )
if any(m not in DEMO_MODELS for m in FINETUNE_MODELS + FROZEN_MODELS):
    try:  # before any job: a wrong path would otherwise fail in every torchrun process
        require_dataset("imagenet_train", IMAGENET_TRAIN)
    except UserError as err:
        raise config_error(err) from None
# The sets a fine-tuned network is evaluated on: its labelled set (heldout / imagenet_val) and the
# natural set where the head is the unmodified network's (fidelity needs comparable logits).
FINETUNE_SETS = {
    m: [*([HELDOUT] if m in DEMO_MODELS else [IMAGENET_SET] if IMAGENET_VAL else []),
        *([NATURAL] if m in DEMO_MODELS or CLASSES[m] == IMAGENET_1K_CLASSES else [])]
    for m in FINETUNE_MODELS
}  # fmt: skip
FINETUNED = [f"{FINETUNED_PREFIX}{v}" for v in FINETUNE_VARIANTS]
FINETUNE_PATH = "results/finetune/{model}/{variant}"
FROZEN_PATH = "results/frozen_keys/{model}/{run}"
# The learned run of the demo is the demo network itself (same engine, recipe, seeds).
FROZEN_METRICS = {
    (m, r): (
        "resources/weights/demo.training.csv"
        if m in DEMO_MODELS and r == "learned"
        else FROZEN_PATH.format(model=m, run=r) + ".metrics.csv"
    )
    for m in FROZEN_MODELS
    for r in FROZEN_RUNS
}
REPLACEMENT_RESULTS = [
    *[RESULT.format(model=m, dataset=d, variant=v) for m, d in EVAL_PAIRS for v in VARIANTS],
    *[RESULT.format(model=m, dataset=d, variant=v) for m in FINETUNE_MODELS for d in FINETUNE_SETS[m] for v in FINETUNED],
]  # fmt: skip
REPLACEMENT_TABLES = ["replacement", "replacement_stages"] if REPLACEMENT.stages else ["replacement"]
REPLACEMENT_FIGURES = (
    ["replacement_accuracy", "replacement_stages"] if REPLACEMENT.stages else ["replacement_accuracy"]
)
# Nothing when no model can be evaluated.
# [B]'s learnable-scale experiment: the fine-tuned variants whose scales train, per fine-tuned model
LEARNABLE_VARIANTS = [v for v in FINETUNE_VARIANTS if is_finetune_only(v)]
LEARNABLE_MODELS = FINETUNE_MODELS if LEARNABLE_VARIANTS else []
LEARNABLE_DATASETS = {m: (FINETUNE_SETS[m] or [None])[0] for m in LEARNABLE_MODELS}
REPLACEMENT_TARGETS = [
    *expand("results/tables/{name}.{ext}", name=REPLACEMENT_TABLES if EVAL_MODELS else [], ext=TABLE_EXTS),
    *expand("results/figures/{name}.{ext}", name=REPLACEMENT_FIGURES if EVAL_MODELS else [], ext=FIGURE_EXTS),
    *expand("results/tables/frozen_keys.{ext}", ext=TABLE_EXTS if FROZEN_MODELS else []),
    *expand("results/figures/frozen_keys.{ext}", ext=FIGURE_EXTS if FROZEN_MODELS else []),
    *expand("results/tables/learnable_scales.{ext}", ext=TABLE_EXTS if LEARNABLE_MODELS else []),
    *expand("results/figures/learnable_scales_{model}.{ext}", model=LEARNABLE_MODELS, ext=FIGURE_EXTS),
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
        preprocessing=lambda wildcards: preprocessing_with_key(
            TIMM_MODELS + NIFF_IMAGENET_ARCHITECTURES, wildcards.key
        ).as_dict(),
    script:
        "../../scripts/replacement/prepare_eval_cache.py"


rule reference_logits:
    input:
        unpack(eval_set_input),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
    output:
        logits=REFERENCE,
    log:
        "logs/replacement/reference_logits/{model}/{dataset}.log",
    wildcard_constraints:
        dataset=alternatives(DATASETS),
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=60),
    params:
        **EVAL_PARAMS,
    script:
        "../../scripts/replacement/reference_logits.py"


rule replace_and_evaluate:
    input:
        unpack(lambda w: variant_input_paths(w.variant, VARIANT_INPUTS, model=w.model)),
        unpack(eval_set_input),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
        reference=REFERENCE,
    output:
        result=RESULT,
    log:
        "logs/replacement/replace_and_evaluate/{model}/{dataset}/{variant}.log",
    wildcard_constraints:
        dataset=alternatives(DATASETS),
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
        unpack(eval_set_input),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
        fits="results/fits/{model}.parquet",
        reference=REFERENCE,
        idealized=expand(
            "results/replacement/{{model}}/{{dataset}}/{variant}.json",
            variant=[idealized_name(m) for m in METHODS],
        ),
    output:
        result="results/replacement/{model}/{dataset}/stages.json",
    log:
        "logs/replacement/replace_stages/{model}/{dataset}.log",
    wildcard_constraints:
        dataset=alternatives(DATASETS),
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
        unpack(training_eval_cache),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    output:
        weights=f"{FINETUNE_PATH}.safetensors",
        meta=f"{FINETUNE_PATH}.json",
        metrics=f"{FINETUNE_PATH}.metrics.csv",
    log:
        "logs/replacement/finetune_frozen/{model}/{variant}.log",
    wildcard_constraints:
        variant=variant_pattern(),
    conda:
        "../envs/masterkey.yaml"
    threads: training_threads
    resources:
        **training_resources(mem_mb=64000, runtime=72 * 60),
    params:
        training=lambda w: training_params(w.model, finetune_recipe(w.model)),
        run_dir=f"{FINETUNE_PATH}.run",
    script:
        "../../scripts/replacement/finetune_frozen.py"


rule evaluate_finetuned:
    input:
        unpack(eval_set_input),
        unpack(finetuned_reference),
        weights=f"{FINETUNE_PATH}.safetensors",
        meta=f"{FINETUNE_PATH}.json",
    output:
        result=f"results/replacement/{{model}}/{{dataset}}/{FINETUNED_PREFIX}{{variant}}.json",
    log:
        "logs/replacement/evaluate_finetuned/{model}/{dataset}/{variant}.log",
    wildcard_constraints:
        dataset=alternatives(DATASETS),
        variant=variant_pattern(),
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=60),
    params:
        **EVAL_PARAMS,
    script:
        "../../scripts/replacement/evaluate_finetuned.py"


rule train_frozen_keys:
    input:
        unpack(frozen_inputs),
        unpack(training_eval_cache),
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
    output:
        weights=f"{FROZEN_PATH}.safetensors",
        meta=f"{FROZEN_PATH}.json",
        metrics=f"{FROZEN_PATH}.metrics.csv",
    log:
        "logs/replacement/train_frozen_keys/{model}/{run}.log",
    wildcard_constraints:
        run=r"learned|keys-published|keys-\d+|random-\d+",
    conda:
        "../envs/masterkey.yaml"
    threads: training_threads
    resources:
        **training_resources(mem_mb=64000, runtime=72 * 60),
    params:
        training=lambda w: training_params(
            w.model, demo_recipe(DEMO).as_dict() if w.model in DEMO_MODELS else FROZEN.recipe
        ),
        key_set=lambda w: frozen_keys_of(w.run),
        assignment=FROZEN.assignment,
        num_keys=FROZEN_KEYS_K,
        run_dir=f"{FROZEN_PATH}.run",
    script:
        "../../scripts/replacement/train_frozen_keys.py"


rule table_frozen_keys:
    input:
        metrics=list(FROZEN_METRICS.values()),
    output:
        report(
            "results/tables/frozen_keys.csv",
            caption="../report/frozen_keys_table.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "frozen master keys from scratch", "paper": "[Q]", "kind": "table"},
        ),
        "results/tables/frozen_keys.md",
        "results/tables/frozen_keys.tex",
    log:
        "logs/replacement/table_frozen_keys.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        runs=[{"model": m, "run": r, "metrics": path} for (m, r), path in FROZEN_METRICS.items()],
    script:
        "../../scripts/replacement/table_frozen_keys.py"


rule figure_frozen_keys:
    input:
        metrics=list(FROZEN_METRICS.values()),
    output:
        png=report(
            "results/figures/frozen_keys.png",
            caption="../report/frozen_keys.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "validation accuracy with frozen filters", "paper": "[Q]", "kind": "figure"},
        ),
        pdf="results/figures/frozen_keys.pdf",
    log:
        "logs/replacement/figure_frozen_keys.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        runs=[{"model": m, "run": r, "metrics": path} for (m, r), path in FROZEN_METRICS.items()],
    script:
        "../../scripts/replacement/figure_frozen_keys.py"


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
        variants=VARIANTS + [f"{FINETUNED_PREFIX}{v}" for v in FINETUNE_VARIANTS],
    script:
        "../../scripts/replacement/table_replacement.py"


rule table_replacement_stages:
    input:
        learned=[f"results/replacement/{model}/{dataset}/learned.json" for model, dataset in EVAL_PAIRS],
        stages=[f"results/replacement/{model}/{dataset}/stages.json" for model, dataset in EVAL_PAIRS],
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


rule learnable_scales:
    input:
        sidecars=expand(f"{FINETUNE_PATH}.json", model=LEARNABLE_MODELS, variant=LEARNABLE_VARIANTS),
    output:
        "results/finetune/learnable_scales.parquet",
    log:
        "logs/replacement/learnable_scales.log",
    conda:
        "../envs/masterkey.yaml"
    params:
        runs=[[m, v] for m in LEARNABLE_MODELS for v in LEARNABLE_VARIANTS],
    script:
        "../../scripts/replacement/learnable_scales.py"


rule table_learnable_scales:
    input:
        scales="results/finetune/learnable_scales.parquet",
        replacement="results/tables/replacement.csv",
    output:
        report(
            "results/tables/learnable_scales.csv",
            caption="../report/learnable_scales_table.rst",
            category=CATEGORY_REPLACEMENT,
            labels={
                "item": "learnable scales: movement and accuracy",
                "paper": "[B] Sec. 5",
                "kind": "table",
            },
        ),
        "results/tables/learnable_scales.md",
        "results/tables/learnable_scales.tex",
    log:
        "logs/replacement/table_learnable_scales.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        datasets=LEARNABLE_DATASETS,
    script:
        "../../scripts/replacement/table_learnable_scales.py"


rule figure_learnable_scales:
    input:
        table="results/tables/learnable_scales.csv",
        scales="results/finetune/learnable_scales.parquet",
    output:
        png=report(
            "results/figures/learnable_scales_{model}.png",
            caption="../report/learnable_scales.rst",
            category=CATEGORY_REPLACEMENT,
            subcategory="{model}",
            labels={"item": "learnable scales", "paper": "[B] Sec. 5", "kind": "figure"},
        ),
        pdf="results/figures/learnable_scales_{model}.pdf",
    log:
        "logs/replacement/figure_learnable_scales/{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/replacement/figure_learnable_scales.py"
