# Stage: autoencoder clustering of depthwise kernels and master key filter selection
# (methods.md section 4; [A], [Q]). Threads and resources: helpers of resources.smk.

rule train_autoencoder:
    input:
        **CLUSTERING_INPUT,
    output:
        model="results/clustering/autoencoder.pt",
        latents="results/clustering/latents.parquet",
        history="results/clustering/autoencoder_history.csv",
        pool="results/clustering/pool.csv",
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
        clusters="results/clustering/clusters.csv",
        raw_clusters="results/clustering/raw_clusters.csv",
        table_csv="results/tables/classification.csv",
        table_md="results/tables/classification.md",
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
        table_csv="results/tables/master_keys_{num_keys}_vs_published.csv",
        table_md="results/tables/master_keys_{num_keys}_vs_published.md",
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
        png="results/figures/cluster_prototypes.png",
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_cluster_prototypes.log",
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
        png="results/figures/cluster_membership_{model}.png",
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_cluster_membership_{model}.log",
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
        png="results/figures/latent_histograms.png",
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_latent_histograms.log",
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
        png="results/figures/master_keys_{num_keys}.png",
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_master_keys_{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"


rule plot_master_key_error_curve:
    input:
        curve="results/clustering/master_key_error_curve_{num_keys}.csv",
    output:
        pdf="results/figures/master_key_error_curve_{num_keys}.pdf",
        png="results/figures/master_key_error_curve_{num_keys}.png",
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4),
        runtime=scaled_runtime(base=10, per_gb=30),
    log:
        "logs/clustering/plot_master_key_error_curve_{num_keys}.log",
    wildcard_constraints:
        num_keys=r"\d+",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/plot_clustering.py"
