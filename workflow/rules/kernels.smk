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
    resources:
        mem_mb=8000,
        runtime=20,
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/extract_kernels.py"
