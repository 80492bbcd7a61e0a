# Stage "clustering" ([A], [Q]; masterkey.clustering; docs/methods.md section 4): autoencoder
# clustering of depthwise kernels and master key filter selection, each odd square kernel size on its
# own (clustering.kernel_sizes, resolved at run time from the kernel indices: each rule handles every
# size in its one job; the files hold every size, keyed "7x7" or with a kernel_size column).
# Threads and resources: the helpers of resources.smk. Figures and tables are report items (captions
# in workflow/report/); the figure rules are cheap and run on the submit host under Slurm (localrule).
CATEGORY_CLUSTERING = "3. Clustering ([A])"
CATEGORY_MASTER_KEYS = "4. Master key filters ([Q])"
CLUSTERING_INPUT = {
    "kernels": expand("results/kernels/{model}.npz", model=MODELS),
    "indices": expand("results/kernels/{model}.parquet", model=MODELS),
}
CLUSTERING_PARAMS = {
    "models": list(MODELS),
    # the NIFF networks ([D]) are classified against types learned without them (never fitted on)
    "held_out": RUN_MODELS,
    "settings": CLUSTERING.as_dict(),
    "seed": config["seed"],
}
FIGURE_RESOURCES = {
    "mem_mb": scaled_mem_mb(base=2000, per_input_mb=4),
    "runtime": scaled_runtime(base=10, per_gb=30),
}


_FIGURES = [
    "cluster_prototypes",
    "latent_histograms",
    f"master_keys_{CLUSTERING.num_master_keys}",
    f"master_key_error_curve_{CLUSTERING.num_master_keys}",
    *(f"cluster_membership_{model}" for model in MODELS),
    "share_vs_accuracy",
]
CLUSTERING_TARGETS = [
    *expand("results/tables/{name}.{ext}", name=("classification", "share_vs_accuracy"), ext=TABLE_EXTS),
    f"results/clustering/master_keys_{CLUSTERING.num_master_keys}.npz",
    *expand(f"results/tables/master_keys_{CLUSTERING.num_master_keys}_vs_published.{{ext}}", ext=TABLE_EXTS),
    *expand("results/figures/{name}.{ext}", name=_FIGURES, ext=FIGURE_EXTS),
]


rule train_autoencoder:
    input:
        **CLUSTERING_INPUT,
    output:
        model="results/clustering/autoencoder.pt",
        latents="results/clustering/latents.parquet",
        history="results/clustering/autoencoder_history.csv",
        pool=report(
            "results/clustering/pool.csv",
            caption="../report/pool.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "kernels pooled per model", "paper": "[A]", "kind": "table"},
        ),
    log:
        "logs/clustering/train_autoencoder.log",
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=4000, runtime=30, per_input_mb=6, per_gb_minutes=60),
    params:
        **CLUSTERING_PARAMS,
    script:
        "../../scripts/clustering/train_autoencoder.py"


rule cluster:
    input:
        **CLUSTERING_INPUT,
        model="results/clustering/autoencoder.pt",
        latents="results/clustering/latents.parquet",
    output:
        assignments="results/clustering/assignments.parquet",
        prototypes="results/clustering/prototypes.npz",
        decoded="results/clustering/prototypes_decoded.npz",
        raw_prototypes="results/clustering/raw_prototypes.npz",
        clusters=report(
            "results/clustering/clusters.csv",
            caption="../report/clusters.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "clusters", "paper": "[A]", "kind": "table"},
        ),
        raw_clusters="results/clustering/raw_clusters.csv",
        table=[
            report(
                "results/tables/classification.csv",
                caption="../report/classification.rst",
                category=CATEGORY_CLUSTERING,
                labels={"item": "classified share", "paper": "[A]", "kind": "table"},
            ),
            "results/tables/classification.md",
            "results/tables/classification.tex",
        ],
    log:
        "logs/clustering/cluster.log",
    conda:
        "../envs/masterkey.yaml"
    threads: scaled_threads(per_gb=4, minimum=2)
    resources:
        mem_mb=scaled_mem_mb(base=4000, per_input_mb=8),
        runtime=scaled_runtime(base=15, per_gb=60),
    params:
        **CLUSTERING_PARAMS,
    script:
        "../../scripts/clustering/cluster.py"


rule select_master_keys:
    input:
        **CLUSTERING_INPUT,
        model="results/clustering/autoencoder.pt",
        published=PUBLISHED_FILTERS,
    output:
        master_keys="results/clustering/master_keys_{num_keys}.npz",
        key_table="results/clustering/master_keys_{num_keys}.csv",
        curve="results/clustering/master_key_error_curve_{num_keys}.csv",
        table=[
            report(
                "results/tables/master_keys_{num_keys}_vs_published.csv",
                caption="../report/master_keys_vs_published.rst",
                category=CATEGORY_MASTER_KEYS,
                labels={"item": "vs the published 8", "paper": "[Q]", "kind": "table"},
            ),
            "results/tables/master_keys_{num_keys}_vs_published.md",
            "results/tables/master_keys_{num_keys}_vs_published.tex",
        ],
    log:
        "logs/clustering/select_master_keys/{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    conda:
        "../envs/masterkey.yaml"
    threads: scaled_threads(per_gb=4, minimum=2)
    resources:
        mem_mb=scaled_mem_mb(base=4000, per_input_mb=8),
        runtime=scaled_runtime(base=15, per_gb=60),
    params:
        **CLUSTERING_PARAMS,
    script:
        "../../scripts/clustering/select_master_keys.py"


rule figure_cluster_prototypes:
    input:
        prototypes="results/clustering/prototypes.npz",
        decoded="results/clustering/prototypes_decoded.npz",
        clusters="results/clustering/clusters.csv",
    output:
        pdf="results/figures/cluster_prototypes.pdf",
        png=report(
            "results/figures/cluster_prototypes.png",
            caption="../report/cluster_prototypes.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "cluster prototypes", "paper": "[A]", "kind": "figure"},
        ),
    log:
        "logs/clustering/figure_cluster_prototypes.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    script:
        "../../scripts/clustering/figure_cluster_prototypes.py"


rule figure_cluster_membership:
    input:
        assignments="results/clustering/assignments.parquet",
        clusters="results/clustering/clusters.csv",
    output:
        pdf="results/figures/cluster_membership_{model}.pdf",
        png=report(
            "results/figures/cluster_membership_{model}.png",
            caption="../report/cluster_membership.rst",
            category=CATEGORY_CLUSTERING,
            subcategory="{model}",
            labels={"item": "per-layer cluster proportions", "paper": "[A]", "kind": "figure"},
        ),
    log:
        "logs/clustering/figure_cluster_membership/{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    script:
        "../../scripts/clustering/figure_cluster_membership.py"


rule figure_latent_histograms:
    input:
        assignments="results/clustering/assignments.parquet",
        clusters="results/clustering/clusters.csv",
    output:
        pdf="results/figures/latent_histograms.pdf",
        png=report(
            "results/figures/latent_histograms.png",
            caption="../report/latent_histograms.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "latent-code histograms", "paper": "[A]", "kind": "figure"},
        ),
    log:
        "logs/clustering/figure_latent_histograms.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    script:
        "../../scripts/clustering/figure_latent_histograms.py"


rule figure_master_keys:
    input:
        master_keys="results/clustering/master_keys_{num_keys}.npz",
        key_table="results/clustering/master_keys_{num_keys}.csv",
        comparison="results/tables/master_keys_{num_keys}_vs_published.csv",
    output:
        pdf="results/figures/master_keys_{num_keys}.pdf",
        png=report(
            "results/figures/master_keys_{num_keys}.png",
            caption="../report/master_keys.rst",
            category=CATEGORY_MASTER_KEYS,
            labels={"item": "master key filters", "paper": "[Q]", "kind": "figure"},
        ),
    log:
        "logs/clustering/figure_master_keys/{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    script:
        "../../scripts/clustering/figure_master_keys.py"


rule figure_master_key_error_curve:
    input:
        curve="results/clustering/master_key_error_curve_{num_keys}.csv",
    output:
        pdf="results/figures/master_key_error_curve_{num_keys}.pdf",
        png=report(
            "results/figures/master_key_error_curve_{num_keys}.png",
            caption="../report/master_key_error_curve.rst",
            category=CATEGORY_MASTER_KEYS,
            labels={"item": "greedy error curve", "paper": "[Q]", "kind": "figure"},
        ),
    log:
        "logs/clustering/figure_master_key_error_curve/{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    script:
        "../../scripts/clustering/figure_master_key_error_curve.py"


rule table_share_vs_accuracy:
    input:
        classification="results/tables/classification.csv",
        prototypes="results/clustering/prototypes.npz",
        meta=expand("resources/weights/{model}.json", model=MODELS),
    output:
        table=[
            report(
                "results/tables/share_vs_accuracy.csv",
                caption="../report/share_vs_accuracy_table.rst",
                category=CATEGORY_CLUSTERING,
                labels={"item": "classified share vs top-1", "paper": "[A]", "kind": "table"},
            ),
            "results/tables/share_vs_accuracy.md",
            "results/tables/share_vs_accuracy.tex",
        ],
    log:
        "logs/clustering/table_share_vs_accuracy.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    params:
        published_top1={name: spec.published_top1 for name, spec in MODELS.items()},
        settings=CLUSTERING.as_dict(),
        seed=config["seed"],
    script:
        "../../scripts/clustering/table_share_vs_accuracy.py"


rule figure_share_vs_accuracy:
    input:
        table="results/tables/share_vs_accuracy.csv",
        classification="results/tables/classification.csv",
    output:
        pdf="results/figures/share_vs_accuracy.pdf",
        png=report(
            "results/figures/share_vs_accuracy.png",
            caption="../report/share_vs_accuracy.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "classified share vs top-1", "paper": "[A]", "kind": "figure"},
        ),
    log:
        "logs/clustering/figure_share_vs_accuracy.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    resources:
        **FIGURE_RESOURCES,
    script:
        "../../scripts/clustering/figure_share_vs_accuracy.py"
