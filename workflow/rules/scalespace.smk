# Stage "scalespace" ([B]; masterkey.scalespace; docs/methods.md sections 2-3): the 8 published
# filters (bundled copy, local file or public address), spread measures and idealized-model fits
# of them and of every depthwise kernel of every model. Figures and tables are report items (captions in workflow/report/); the cheap
# figure/table rules run on the submit host under Slurm (localrule).
from masterkey.scalespace.fitting import METHODS

CATEGORY_PUBLISHED = "1. Published 8 filters ([Q], [B])"
CATEGORY_SCALESPACE = "2. Scale-space models per model ([B])"


# Tables and figures of the published 8 and of every model.
SCALESPACE_TARGETS = [
    *expand("results/published/{table}.{ext}", table=("spread", "fits"), ext=TABLE_EXTS),
    *expand("results/figures/published_{name}.{ext}", name=("models", "spread"), ext=FIGURE_EXTS),
    *expand("results/{stage}/{model}.parquet", stage=("fits", "spread"), model=MODELS),
    *expand(
        "results/figures/{name}_{model}.{ext}",
        name=("fitted_scales", "residuals", "explained_share"),
        model=MODELS,
        ext=FIGURE_EXTS,
    ),
    *expand("results/tables/explained_share_{model}.{ext}", model=MODELS, ext=TABLE_EXTS),
]


rule fetch_published_filters:
    output:
        filters=PUBLISHED_FILTERS,
    log:
        "logs/scalespace/fetch_published_filters.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    params:
        source=config["published_filters"],
    script:
        "../../scripts/scalespace/fetch_published_filters.py"


rule published_scalespace:
    input:
        filters=PUBLISHED_FILTERS,
    output:
        spread=[
            report(
                "results/published/spread.csv",
                caption="../report/published_spread_table.rst",
                category=CATEGORY_PUBLISHED,
                labels={"item": "spread measures", "paper": "[B]", "kind": "table"},
            ),
            "results/published/spread.md",
            "results/published/spread.tex",
        ],
        fits=[
            report(
                "results/published/fits.csv",
                caption="../report/published_fits_table.rst",
                category=CATEGORY_PUBLISHED,
                labels={"item": "fitted scales per method", "paper": "[B]", "kind": "table"},
            ),
            "results/published/fits.md",
            "results/published/fits.tex",
        ],
    log:
        "logs/scalespace/published_scalespace.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace/published_scalespace.py"


rule fit_kernels:
    input:
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    output:
        fits="results/fits/{model}.parquet",
    log:
        "logs/scalespace/fit_kernels/{model}.log",
    conda:
        "../envs/masterkey.yaml"
    threads: 2
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=20),
        runtime=scaled_runtime(base=10, per_gb=120),
    params:
        methods=list(METHODS),
    script:
        "../../scripts/scalespace/fit_kernels.py"


rule spread_kernels:
    input:
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
        fits="results/fits/{model}.parquet",
    output:
        spread="results/spread/{model}.parquet",
    log:
        "logs/scalespace/spread_kernels/{model}.log",
    conda:
        "../envs/masterkey.yaml"
    resources:
        mem_mb=scaled_mem_mb(base=2000, per_input_mb=10),
        runtime=scaled_runtime(base=5, per_gb=30),
    script:
        "../../scripts/scalespace/spread_kernels.py"


rule figure_published_models:
    input:
        filters=PUBLISHED_FILTERS,
        fits="results/published/fits.csv",
    output:
        png=report(
            "results/figures/published_models.png",
            caption="../report/published_models.rst",
            category=CATEGORY_PUBLISHED,
            labels={"item": "idealized models per method", "paper": "[B]", "kind": "figure"},
        ),
        pdf="results/figures/published_models.pdf",
    log:
        "logs/scalespace/figure_published_models.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace/figure_published_models.py"


rule figure_published_spread:
    input:
        filters=PUBLISHED_FILTERS,
        spread="results/published/spread.csv",
    output:
        png=report(
            "results/figures/published_spread.png",
            caption="../report/published_spread.rst",
            category=CATEGORY_PUBLISHED,
            labels={"item": "spatial spread", "paper": "[B]", "kind": "figure"},
        ),
        pdf="results/figures/published_spread.pdf",
    log:
        "logs/scalespace/figure_published_spread.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace/figure_published_spread.py"


rule figure_fitted_scales:
    input:
        fits="results/fits/{model}.parquet",
    output:
        png=report(
            "results/figures/fitted_scales_{model}.png",
            caption="../report/fitted_scales.rst",
            category=CATEGORY_SCALESPACE,
            subcategory="{model}",
            labels={"item": "fitted scales per stage", "kind": "figure"},
        ),
        pdf="results/figures/fitted_scales_{model}.pdf",
    log:
        "logs/scalespace/figure_fitted_scales/{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace/figure_fitted_scales.py"


rule figure_residuals:
    input:
        fits="results/fits/{model}.parquet",
    output:
        png=report(
            "results/figures/residuals_{model}.png",
            caption="../report/residuals.rst",
            category=CATEGORY_SCALESPACE,
            subcategory="{model}",
            labels={"item": "residuals", "kind": "figure"},
        ),
        pdf="results/figures/residuals_{model}.pdf",
    log:
        "logs/scalespace/figure_residuals/{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace/figure_residuals.py"


rule figure_explained_share:
    input:
        fits="results/fits/{model}.parquet",
    output:
        png=report(
            "results/figures/explained_share_{model}.png",
            caption="../report/explained_share.rst",
            category=CATEGORY_SCALESPACE,
            subcategory="{model}",
            labels={"item": "explained share", "kind": "figure"},
        ),
        pdf="results/figures/explained_share_{model}.pdf",
        tables=[
            report(
                "results/tables/explained_share_{model}.csv",
                caption="../report/explained_share_table.rst",
                category=CATEGORY_SCALESPACE,
                subcategory="{model}",
                labels={"item": "explained share", "kind": "table"},
            ),
            "results/tables/explained_share_{model}.md",
            "results/tables/explained_share_{model}.tex",
        ],
    log:
        "logs/scalespace/figure_explained_share/{model}.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace/figure_explained_share.py"
