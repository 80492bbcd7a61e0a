# Stage "nets": the networks - timm checkpoints or the embedded demo model - and every
# depthwise kernel of each (masterkey.nets; docs/methods.md section 1).
CATEGORY_DEMO = "0. Demo model"
CATEGORY_KERNELS = "0. Depthwise kernels per model"
# every checkpoint rule fetch_weights stores: the timm models and shiftinv's fetched networks
WEIGHT_SPECS = {**MODELS, **FETCHED_NETWORKS}
# The kernels of every model (everything else of the stage is their input) and their shapes.
NETS_TARGETS = [
    *expand("results/kernels/{model}.{ext}", model=MODELS, ext=("npz", "parquet")),
    *expand("results/tables/kernel_shapes_{model}.{ext}", model=MODELS, ext=TABLE_EXTS),
]


rule fetch_weights:
    input:
        lambda wildcards: weights_input(WEIGHT_SPECS[wildcards.model]),
    output:
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
    log:
        "logs/nets/fetch_weights/{model}.log",
    wildcard_constraints:
        model=alternatives(TIMM_MODELS + list(FETCHED_NETWORKS)),
    conda:
        "../envs/masterkey.yaml"
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4, estimate=model_checkpoint_mb),
        runtime=scaled_runtime(base=15, per_gb=15, estimate=model_checkpoint_mb),
    params:
        spec=lambda wildcards: WEIGHT_SPECS[wildcards.model].as_dict(),
        hub_cache=config["hub_cache"],
    script:
        "../../scripts/nets/fetch_weights.py"


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
        "logs/nets/train_demo_model.log",
    conda:
        "../envs/masterkey.yaml"
    threads: demo_threads
    resources:
        mem_mb=demo_mem_mb,
        runtime=demo_runtime,
    params:
        demo=DEMO.as_dict(),
        seed=config["seed"],
    script:
        "../../scripts/nets/train_demo_model.py"


rule extract_kernels:
    input:
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
    output:
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    log:
        "logs/nets/extract_kernels/{model}.log",
    conda:
        "../envs/masterkey.yaml"
    threads: scaled_threads(per_gb=2, maximum=4, estimate=model_checkpoint_mb)
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4, estimate=model_checkpoint_mb),
        runtime=scaled_runtime(base=5, per_gb=10, estimate=model_checkpoint_mb),
    params:
        # only NIFF runs crop their kernels: a change of niff.crop reruns just their extraction
        niff_crop=lambda w: NIFF.crop if w.model in NIFF_RUNS or is_niff_architecture(w.model) else None,
    script:
        "../../scripts/nets/extract_kernels.py"


rule table_kernel_shapes:
    input:
        index="results/kernels/{model}.parquet",
    output:
        tables=[
            report(
                "results/tables/kernel_shapes_{model}.csv",
                caption="../report/kernel_shapes_table.rst",
                category=CATEGORY_KERNELS,
                subcategory="{model}",
                labels={"item": "kernel shapes", "kind": "table"},
            ),
            "results/tables/kernel_shapes_{model}.md",
            "results/tables/kernel_shapes_{model}.tex",
        ],
    log:
        "logs/nets/table_kernel_shapes/{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/nets/table_kernel_shapes.py"
