# Stage: autoencoder clustering of depthwise kernels and master key filter selection
# (methods.md section 4; [A], [Q]). Threads and resources: helpers of resources.smk.
# Figures and tables are report items (captions in workflow/report/); the
# plot_* rules are cheap and run on the submit host under Slurm (localrule).

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
    params:
        **CLUSTERING_PARAMS,
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=4000, runtime=30, per_input_mb=6, per_gb_minutes=60),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/train_autoencoder.py"


rule cluster:
    input:
        **CLUSTERING_INPUT,
        model="results/clustering/autoencoder.pt",
        latents="results/clustering/latents.parquet",
    output:
        assignments="results/clustering/assignments.parquet",
        prototypes="results/clustering/prototypes.npy",
        decoded="results/clustering/prototypes_decoded.npy",
        raw_prototypes="results/clustering/raw_prototypes.npy",
        clusters=report(
            "results/clustering/clusters.csv",
            caption="../report/clusters.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "clusters", "paper": "[A]", "kind": "table"},
        ),
        raw_clusters="results/clustering/raw_clusters.csv",
        table_csv=report(
            "results/tables/classification.csv",
            caption="../report/classification.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "classified share", "paper": "[A]", "kind": "table"},
        ),
        table_md="results/tables/classification.md",
        table_tex="results/tables/classification.tex",
    log:
        "logs/clustering/cluster.log",
    params:
        **CLUSTERING_PARAMS,
    threads: scaled_threads(per_gb=4, minimum=2)
    resources:
        mem_mb=scaled_mem_mb(base=4000, per_input_mb=8),
        runtime=scaled_runtime(base=15, per_gb=60),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/cluster.py"


rule select_master_keys:
    input:
        **CLUSTERING_INPUT,
        model="results/clustering/autoencoder.pt",
        published=PUBLISHED_FILTERS,
    output:
        master_keys="results/clustering/master_keys_{num_keys}.npy",
        curve="results/clustering/master_key_error_curve_{num_keys}.csv",
        table_csv=report(
            "results/tables/master_keys_{num_keys}_vs_published.csv",
            caption="../report/master_keys_vs_published.rst",
            category=CATEGORY_MASTER_KEYS,
            labels={"item": "vs the published 8", "paper": "[Q]", "kind": "table"},
        ),
        table_md="results/tables/master_keys_{num_keys}_vs_published.md",
        table_tex="results/tables/master_keys_{num_keys}_vs_published.tex",
    log:
        "logs/clustering/select_master_keys_{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    params:
        **CLUSTERING_PARAMS,
    threads: scaled_threads(per_gb=4, minimum=2)
    resources:
        mem_mb=scaled_mem_mb(base=4000, per_input_mb=8),
        runtime=scaled_runtime(base=15, per_gb=60),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/select_master_keys.py"


rule plot_cluster_prototypes:
    input:
        prototypes="results/clustering/prototypes.npy",
        decoded="results/clustering/prototypes_decoded.npy",
        clusters="results/clustering/clusters.csv",
    output:
        pdf="results/figures/cluster_prototypes.pdf",
        png=report(
            "results/figures/cluster_prototypes.png",
            caption="../report/cluster_prototypes.rst",
            category=CATEGORY_CLUSTERING,
            labels={"item": "cluster prototypes", "paper": "[A]", "kind": "figure"},
        ),
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_cluster_prototypes.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"


rule plot_cluster_membership:
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
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_cluster_membership_{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"


rule plot_latent_histograms:
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
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_latent_histograms.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"


rule plot_master_keys:
    input:
        master_keys="results/clustering/master_keys_{num_keys}.npy",
        comparison="results/tables/master_keys_{num_keys}_vs_published.csv",
    output:
        pdf="results/figures/master_keys_{num_keys}.pdf",
        png=report(
            "results/figures/master_keys_{num_keys}.png",
            caption="../report/master_keys.rst",
            category=CATEGORY_MASTER_KEYS,
            labels={"item": "master key filters", "paper": "[Q]", "kind": "figure"},
        ),
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_master_keys_{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"


rule plot_master_key_error_curve:
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
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_master_key_error_curve_{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"
