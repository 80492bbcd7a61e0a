# Stage "niff" ([D]; masterkey.niff; docs/methods.md section 7): networks whose depthwise filters
# may be as large as the feature map (neural implicit frequency filters), trained from scratch by
# the workflow (niff.runs) beside the plain network they are compared with; their spatial kernels,
# trained and at initialisation, measured by the kernel mass ratio. A run also listed in `models`
# goes through spread, fits and clustering like any model (the central niff.crop of its kernels).

CATEGORY_NIFF = "6. Neural implicit frequency filters ([D])"
CIFAR10 = config["cifar10"]
DATA_OF = {"cifar10": CIFAR10, "imagenet": config["imagenet_train"]}
# runs whose data is there (demo runs always); the others are left out with one line
DEMO_RUNS = [name for name, run in NIFF_RUNS.items() if run.dataset == "demo"]
GPU_RUNS = [
    name
    for name, run in NIFF_RUNS.items()
    if run.dataset != "demo" and DATA_OF[run.dataset] and (run.dataset != "imagenet" or IMAGENET_VAL)
]
_left_out = [name for name in NIFF_RUNS if name not in DEMO_RUNS + GPU_RUNS]
if _left_out:
    print(
        f"niff: run(s) {', '.join(_left_out)} left out: set cifar10, or imagenet_train and imagenet_val",
        file=sys.stderr,
    )
for _name in RUN_MODELS:
    if _name in _left_out:
        raise config_error(f"models: '{_name}' is trained by niff.runs, whose data is not configured")
TRAINED_RUNS = DEMO_RUNS + GPU_RUNS
for _name in TRAINED_RUNS:
    if NIFF_RUNS[_name].baseline in _left_out:
        raise config_error(
            f"niff.runs: the baseline '{NIFF_RUNS[_name].baseline}' of '{_name}' is left out (its data is "
            "not configured); set its data path or choose another baseline"
        )
# the plain architectures whose ImageNet validation cache the ImageNet runs read (prepare_eval_cache)
NIFF_IMAGENET_ARCHITECTURES = [
    plain_architecture(NIFF_RUNS[name].architecture)
    for name in GPU_RUNS
    if NIFF_RUNS[name].dataset == "imagenet"
]
NIFF_ANALYSED = [name for name in TRAINED_RUNS if is_niff_architecture(NIFF_RUNS[name].architecture)]
NIFF_FIGURES = ("kmr", "kernels", "pca")
NIFF_TARGETS = [
    *expand("resources/weights/{run}.json", run=TRAINED_RUNS),  # plain runs too, baseline or not
    *expand(
        "results/tables/niff_{table}.{ext}",
        table=("kmr", "kmr_layers", "accuracy") if NIFF_ANALYSED else (),
        ext=TABLE_EXTS,
    ),
    *expand(
        "results/figures/niff_{figure}_{run}.{ext}", figure=NIFF_FIGURES, run=NIFF_ANALYSED, ext=FIGURE_EXTS
    ),
]
RUN_OUTPUTS = {
    "weights": "resources/weights/{run}.safetensors",
    "meta": "resources/weights/{run}.json",
    "init_weights": "resources/weights/{run}.init.safetensors",
    "init_meta": "resources/weights/{run}.init.json",
}


rule train_niff_demo:
    input:
        published=PUBLISHED_FILTERS,
    output:
        **RUN_OUTPUTS,
        metrics=report(
            "resources/weights/{run}.metrics.csv",
            caption="../report/niff_training.rst",
            category=CATEGORY_NIFF,
            subcategory="{run}",
            labels={"item": "training log", "paper": "[D]", "kind": "table"},
        ),
    log:
        "logs/niff/train_niff_demo/{run}.log",
    wildcard_constraints:
        run=alternatives(DEMO_RUNS),
    conda:
        "../envs/masterkey.yaml"
    threads: demo_threads
    resources:
        mem_mb=demo_mem_mb,
        runtime=demo_runtime,
    params:
        run=lambda w: NIFF_RUNS[w.run].as_dict(),
        niff=NIFF.as_dict(),
        demo=DEMO.as_dict(),
        seed=config["seed"],
    script:
        "../../scripts/niff/train_niff_demo.py"


rule train_niff:
    input:
        unpack(niff_eval_cache),
    output:
        **RUN_OUTPUTS,
        metrics="resources/weights/{run}.metrics.csv",
    log:
        "logs/niff/train_niff/{run}.log",
    wildcard_constraints:
        run=alternatives(GPU_RUNS),
    conda:
        "../envs/masterkey.yaml"
    threads: training_threads
    resources:
        **training_resources(mem_mb=64000, runtime=72 * 60),
    params:
        run=lambda w: NIFF_RUNS[w.run].as_dict(),
        niff=NIFF.as_dict(),
        training=RUN.as_dict(),
        paths={"cifar10": CIFAR10, "imagenet_train": config["imagenet_train"]},
        seed=config["seed"],
        run_dir="resources/weights/{run}.run",
    script:
        "../../scripts/niff/train_niff.py"


rule niff_kernels:
    input:
        unpack(niff_baseline),
        **RUN_OUTPUTS,
    output:
        kernels="results/niff/{run}/kernels.npz",
        kmr="results/niff/{run}/kmr.parquet",
    log:
        "logs/niff/niff_kernels/{run}.log",
    wildcard_constraints:
        run=alternatives(NIFF_ANALYSED),
    conda:
        "../envs/masterkey.yaml"
    resources:
        mem_mb=4000,
    script:
        "../../scripts/niff/niff_kernels.py"


rule table_niff_kmr:
    input:
        kmr=expand("results/niff/{run}/kmr.parquet", run=NIFF_ANALYSED),
    output:
        report(
            "results/tables/niff_kmr.csv",
            caption="../report/niff_kmr_table.rst",
            category=CATEGORY_NIFF,
            labels={"item": "effective kernel sizes", "paper": "[D]", "kind": "table"},
        ),
        "results/tables/niff_kmr.md",
        "results/tables/niff_kmr.tex",
    log:
        "logs/niff/table_niff_kmr.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        runs=NIFF_ANALYSED,
    script:
        "../../scripts/niff/table_niff_kmr.py"


rule table_niff_kmr_layers:
    input:
        kmr=expand("results/niff/{run}/kmr.parquet", run=NIFF_ANALYSED),
    output:
        report(
            "results/tables/niff_kmr_layers.csv",
            caption="../report/niff_kmr_layers_table.rst",
            category=CATEGORY_NIFF,
            labels={"item": "effective kernel sizes per layer", "paper": "[D]", "kind": "table"},
        ),
        "results/tables/niff_kmr_layers.md",
        "results/tables/niff_kmr_layers.tex",
    log:
        "logs/niff/table_niff_kmr_layers.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        runs=NIFF_ANALYSED,
    script:
        "../../scripts/niff/table_niff_kmr_layers.py"


rule table_niff_accuracy:
    input:
        meta=expand("resources/weights/{run}.json", run=NIFF_ANALYSED),
        baselines=[
            f"resources/weights/{NIFF_RUNS[r].baseline}.json" for r in NIFF_ANALYSED if NIFF_RUNS[r].baseline
        ],
    output:
        report(
            "results/tables/niff_accuracy.csv",
            caption="../report/niff_accuracy_table.rst",
            category=CATEGORY_NIFF,
            labels={"item": "NIFF vs plain accuracy", "paper": "[D]", "kind": "table"},
        ),
        "results/tables/niff_accuracy.md",
        "results/tables/niff_accuracy.tex",
    log:
        "logs/niff/table_niff_accuracy.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        runs=niff_accuracy_runs(),
    script:
        "../../scripts/niff/table_niff_accuracy.py"


rule figure_niff_kmr:
    input:
        kmr="results/niff/{run}/kmr.parquet",
    output:
        png=report(
            "results/figures/niff_kmr_{run}.png",
            caption="../report/niff_kmr.rst",
            category=CATEGORY_NIFF,
            subcategory="{run}",
            labels={"item": "kernel mass ratio", "paper": "[D]", "kind": "figure"},
        ),
        pdf="results/figures/niff_kmr_{run}.pdf",
    log:
        "logs/niff/figure_niff_kmr/{run}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/niff/figure_niff_kmr.py"


rule figure_niff_kernels:
    input:
        kernels="results/niff/{run}/kernels.npz",
    output:
        png=report(
            "results/figures/niff_kernels_{run}.png",
            caption="../report/niff_kernels.rst",
            category=CATEGORY_NIFF,
            subcategory="{run}",
            labels={"item": "spatial kernels", "paper": "[D]", "kind": "figure"},
        ),
        pdf="results/figures/niff_kernels_{run}.pdf",
    log:
        "logs/niff/figure_niff_kernels/{run}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/niff/figure_niff_kernels.py"


rule figure_niff_pca:
    input:
        kernels="results/niff/{run}/kernels.npz",
    output:
        png=report(
            "results/figures/niff_pca_{run}.png",
            caption="../report/niff_pca.rst",
            category=CATEGORY_NIFF,
            subcategory="{run}",
            labels={"item": "principal components of the kernels", "paper": "[D]", "kind": "figure"},
        ),
        pdf="results/figures/niff_pca_{run}.pdf",
    log:
        "logs/niff/figure_niff_pca/{run}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/niff/figure_niff_pca.py"
