# Stage "shiftinv" ([C]; masterkey.shiftinv; docs/methods.md section 8): shift invariance of max
# pooling after Gabor-like filters. Each filter - of the dual-tree complex wavelet packet transform
# (DT-CWPT) at every configured depth, or of the first layer of a configured network - is described
# (characteristic frequency, Gabor-likeness) and measured on grayscale crops: RMax (strided real
# convolution + max pooling) against CMod (modulus of the complex, analytic filter's output) and
# RMax's instability under 1-pixel shifts, beside the theory's bounds.

CATEGORY_SHIFTINV = "7. Shift invariance of max pooling ([C])"
SHIFTINV_NETWORKS = list(SHIFTINV.networks)
SHIFTINV_FIGURES = [
    *expand("results/figures/shiftinv_gamma_m{m}.{ext}", m=SHIFTINV.gamma_subsamplings, ext=FIGURE_EXTS),
    *expand("results/figures/shiftinv_dtcwpt_J{depth}.{ext}", depth=SHIFTINV.depths, ext=FIGURE_EXTS),
    *expand(
        "results/figures/shiftinv_first_layer_{network}.{ext}", network=SHIFTINV_NETWORKS, ext=FIGURE_EXTS
    ),
    *expand("results/figures/shiftinv_bounds.{ext}", ext=FIGURE_EXTS),
]
SHIFTINV_TABLES = ("gabor", "bounds", *(("first_layers",) if SHIFTINV_NETWORKS else ()))
SHIFTINV_TARGETS = [
    *SHIFTINV_FIGURES,
    *expand("results/tables/shiftinv_{table}.{ext}", table=SHIFTINV_TABLES, ext=TABLE_EXTS),
]
SHIFTINV_PARAMS = {
    "q": SHIFTINV.q,
    "shifts": [list(u) for u in SHIFTINV.shifts],
    "context": SHIFTINV.context,
    "device": SHIFTINV.device,
    "batch_size": SHIFTINV.batch_size,
}


rule train_shiftinv_demo:
    input:
        published=PUBLISHED_FILTERS,
    output:
        weights="resources/weights/{run}.safetensors",
        meta="resources/weights/{run}.json",
        metrics=report(
            "resources/weights/{run}.metrics.csv",
            caption="../report/shiftinv_training.rst",
            category=CATEGORY_SHIFTINV,
            subcategory="{run}",
            labels={"item": "training log", "paper": "[C]", "kind": "table"},
        ),
    log:
        "logs/shiftinv/train_shiftinv_demo/{run}.log",
    wildcard_constraints:
        run=alternatives(list(SHIFTINV_RUNS)),
    conda:
        "../envs/masterkey.yaml"
    threads: demo_threads
    resources:
        mem_mb=demo_mem_mb,
        runtime=demo_runtime,
    params:
        run=lambda w: SHIFTINV_RUNS[w.run].as_dict(),
        demo=DEMO.as_dict(),
        seed=config["seed"],
    script:
        "../../scripts/shiftinv/train_shiftinv_demo.py"


rule shiftinv_images:
    output:
        "results/shiftinv/images.npz",
    log:
        "logs/shiftinv/shiftinv_images.log",
    conda:
        "../envs/masterkey.yaml"
    resources:
        mem_mb=4000,
    params:
        images=SHIFTINV.images,
        size=SHIFTINV.image_size + 2 * SHIFTINV.context,
        imagenet_val=IMAGENET_VAL,
        seed=config["seed"],
    script:
        "../../scripts/shiftinv/shiftinv_images.py"


rule shiftinv_dtcwpt:
    input:
        images="results/shiftinv/images.npz",
    output:
        filters="results/shiftinv/dtcwpt_J{depth}.npz",
        measures="results/shiftinv/dtcwpt_J{depth}.parquet",
    log:
        "logs/shiftinv/shiftinv_dtcwpt/{depth}.log",
    wildcard_constraints:
        depth=r"\d+",
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=120),
    params:
        **SHIFTINV_PARAMS,
    script:
        "../../scripts/shiftinv/shiftinv_dtcwpt.py"


rule shiftinv_first_layer:
    input:
        images="results/shiftinv/images.npz",
        weights="resources/weights/{network}.safetensors",
        meta="resources/weights/{network}.json",
    output:
        filters="results/shiftinv/first_layer/{network}.npz",
        measures="results/shiftinv/first_layer/{network}.parquet",
    log:
        "logs/shiftinv/shiftinv_first_layer/{network}.log",
    wildcard_constraints:
        network=alternatives(SHIFTINV_NETWORKS),
    conda:
        "../envs/masterkey.yaml"
    threads: GPU_THREADS
    resources:
        **gpu_resources(mem_mb=16000, runtime=120),
    params:
        **SHIFTINV_PARAMS,
    script:
        "../../scripts/shiftinv/shiftinv_first_layer.py"


rule figure_shiftinv_gamma:
    output:
        png=report(
            "results/figures/shiftinv_gamma_m{m}.png",
            caption="../report/shiftinv_gamma.rst",
            category=CATEGORY_SHIFTINV,
            subcategory="pathological frequencies",
            labels={"item": "gamma_q(m theta), m = {m}", "paper": "[C]", "kind": "figure"},
        ),
        pdf="results/figures/shiftinv_gamma_m{m}.pdf",
    log:
        "logs/shiftinv/figure_shiftinv_gamma/{m}.log",
    wildcard_constraints:
        m=r"\d+",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        q=SHIFTINV.q,
    script:
        "../../scripts/shiftinv/figure_shiftinv_gamma.py"


rule figure_shiftinv_dtcwpt:
    input:
        measures="results/shiftinv/dtcwpt_J{depth}.parquet",
    output:
        png=report(
            "results/figures/shiftinv_dtcwpt_J{depth}.png",
            caption="../report/shiftinv_dtcwpt.rst",
            category=CATEGORY_SHIFTINV,
            subcategory="DT-CWPT",
            labels={"item": "filters on the Fourier plane, J = {depth}", "paper": "[C]", "kind": "figure"},
        ),
        pdf="results/figures/shiftinv_dtcwpt_J{depth}.pdf",
    log:
        "logs/shiftinv/figure_shiftinv_dtcwpt/{depth}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/shiftinv/figure_shiftinv_dtcwpt.py"


rule figure_shiftinv_first_layer:
    input:
        filters="results/shiftinv/first_layer/{network}.npz",
        measures="results/shiftinv/first_layer/{network}.parquet",
    output:
        png=report(
            "results/figures/shiftinv_first_layer_{network}.png",
            caption="../report/shiftinv_first_layer.rst",
            category=CATEGORY_SHIFTINV,
            subcategory="{network}",
            labels={"item": "first-layer filters", "paper": "[C]", "kind": "figure"},
        ),
        pdf="results/figures/shiftinv_first_layer_{network}.pdf",
    log:
        "logs/shiftinv/figure_shiftinv_first_layer/{network}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/shiftinv/figure_shiftinv_first_layer.py"


rule figure_shiftinv_bounds:
    input:
        dtcwpt=expand("results/shiftinv/dtcwpt_J{depth}.parquet", depth=SHIFTINV.depths),
        networks=expand("results/shiftinv/first_layer/{network}.parquet", network=SHIFTINV_NETWORKS),
    output:
        png=report(
            "results/figures/shiftinv_bounds.png",
            caption="../report/shiftinv_bounds.rst",
            category=CATEGORY_SHIFTINV,
            labels={"item": "measured vs bound", "paper": "[C]", "kind": "figure"},
        ),
        pdf="results/figures/shiftinv_bounds.pdf",
    log:
        "logs/shiftinv/figure_shiftinv_bounds.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        depths=list(SHIFTINV.depths),
        networks=SHIFTINV_NETWORKS,
    script:
        "../../scripts/shiftinv/figure_shiftinv_bounds.py"


rule table_shiftinv_gabor:
    input:
        dtcwpt=expand("results/shiftinv/dtcwpt_J{depth}.parquet", depth=SHIFTINV.depths),
    output:
        report(
            "results/tables/shiftinv_gabor.csv",
            caption="../report/shiftinv_gabor_table.rst",
            category=CATEGORY_SHIFTINV,
            labels={"item": "Gabor-likeness of the DT-CWPT filters", "paper": "[C]", "kind": "table"},
        ),
        "results/tables/shiftinv_gabor.md",
        "results/tables/shiftinv_gabor.tex",
    log:
        "logs/shiftinv/table_shiftinv_gabor.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        depths=list(SHIFTINV.depths),
    script:
        "../../scripts/shiftinv/table_shiftinv_gabor.py"


rule table_shiftinv_bounds:
    input:
        dtcwpt=expand("results/shiftinv/dtcwpt_J{depth}.parquet", depth=SHIFTINV.depths),
        networks=expand("results/shiftinv/first_layer/{network}.parquet", network=SHIFTINV_NETWORKS),
    output:
        report(
            "results/tables/shiftinv_bounds.csv",
            caption="../report/shiftinv_bounds_table.rst",
            category=CATEGORY_SHIFTINV,
            labels={"item": "measured vs bound per filter bank", "paper": "[C]", "kind": "table"},
        ),
        "results/tables/shiftinv_bounds.md",
        "results/tables/shiftinv_bounds.tex",
    log:
        "logs/shiftinv/table_shiftinv_bounds.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        depths=list(SHIFTINV.depths),
        networks=SHIFTINV_NETWORKS,
    script:
        "../../scripts/shiftinv/table_shiftinv_bounds.py"


rule table_shiftinv_first_layers:
    input:
        networks=expand("results/shiftinv/first_layer/{network}.parquet", network=SHIFTINV_NETWORKS),
    output:
        report(
            "results/tables/shiftinv_first_layers.csv",
            caption="../report/shiftinv_first_layers_table.rst",
            category=CATEGORY_SHIFTINV,
            labels={"item": "first layers of the networks", "paper": "[C]", "kind": "table"},
        ),
        "results/tables/shiftinv_first_layers.md",
        "results/tables/shiftinv_first_layers.tex",
    log:
        "logs/shiftinv/table_shiftinv_first_layers.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        networks=SHIFTINV_NETWORKS,
    script:
        "../../scripts/shiftinv/table_shiftinv_first_layers.py"
