# Stage 5: replace the learned depthwise kernels by idealized / master key filters and
# evaluate without retraining (methods.md section 5; [B] Section 5, [Q]).
# The demo model is evaluated on its held-out split; timm models on imagenet_val,
# decoded once per preprocessing setting into EVAL_CACHE.
# Settings, inputs and targets: the replacement section of common.smk.


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
        report(
            "results/tables/replacement.csv",
            caption="../report/replacement_table.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "replacement accuracy", "paper": "[B] Sec. 5, [Q]", "kind": "table"},
        ),
        "results/tables/replacement.md",
        "results/tables/replacement.tex",
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
        report(
            "results/tables/replacement_stages.csv",
            caption="../report/replacement_stages_table.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "one stage replaced", "paper": "[B] Sec. 5", "kind": "table"},
        ),
        "results/tables/replacement_stages.md",
        "results/tables/replacement_stages.tex",
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
        png=report(
            "results/figures/replacement_accuracy.png",
            caption="../report/replacement_accuracy.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "accuracy drop per variant", "paper": "[B] Sec. 5, [Q]", "kind": "figure"},
        ),
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
        png=report(
            "results/figures/replacement_stages.png",
            caption="../report/replacement_stages.rst",
            category=CATEGORY_REPLACEMENT,
            labels={"item": "accuracy drop per stage", "paper": "[B] Sec. 5", "kind": "figure"},
        ),
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
