# Stage 2: every depthwise kernel of every model.


rule extract_kernels:
    input:
        weights="resources/weights/{model}.safetensors",
        meta="resources/weights/{model}.json",
    output:
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    log:
        "logs/extract_kernels/{model}.log",
    threads: scaled_threads(per_gb=2, maximum=4, estimate=model_checkpoint_mb)
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=4, estimate=model_checkpoint_mb),
        runtime=scaled_runtime(base=5, per_gb=10, estimate=model_checkpoint_mb),
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/extract_kernels.py"
