# Stage 1: model weights - timm checkpoints or the embedded demo model.


rule fetch_published_filters:
    output:
        filters=PUBLISHED_FILTERS,
    log:
        "logs/fetch_published_filters.log",
    params:
        source=config["published_filters"],
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/fetch_published_filters.py"


rule fetch_weights:
    input:
        local_weights,
    output:
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
    log:
        "logs/fetch_weights/{model}.log",
    wildcard_constraints:
        model=alternatives(TIMM_MODELS),
    params:
        local_weights=lambda wildcards: MODELS[wildcards.model].weights,
        hub_cache=config["hub_cache"],
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4, estimate=model_checkpoint_mb),
        runtime=scaled_runtime(base=15, per_gb=15, estimate=model_checkpoint_mb),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/fetch_weights.py"


rule train_demo_model:
    input:
        published=PUBLISHED_FILTERS,
    output:
        weights="resources/weights/demo.safetensors",
        meta="resources/weights/demo.json",
        training_log=report(
            "resources/weights/demo.training.csv",
            caption="../report/demo_training.rst",
            category=CATEGORY_DEMO,
            labels={"item": "training log", "kind": "table"},
        ),
    log:
        "logs/train_demo_model.log",
    params:
        demo=config["demo"],
        seed=config["seed"],
    threads: demo_threads
    resources:
        mem_mb=demo_mem_mb,
        runtime=demo_runtime,
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/train_demo_model.py"
