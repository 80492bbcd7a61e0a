# Stage 3: scale-space modelling - spread measures and idealized-model fits
# of the 8 published filters and of every depthwise kernel of every model.
# Figures and tables are report items (captions in workflow/report/); the
# cheap figure/table rules run on the submit host under Slurm (localrule).


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
        "logs/published_scalespace.log",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/published_scalespace.py"


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
        "logs/figures/published_models.log",
    params:
        figure="published_models",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


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
        "logs/figures/published_spread.log",
    params:
        figure="published_spread",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


rule fit_kernels:
    input:
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
    output:
        fits="results/fits/{model}.parquet",
    log:
        "logs/fit_kernels/{model}.log",
    params:
        methods=FIT_METHODS,
    threads: 2
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/fit_kernels.py"


rule spread_kernels:
    input:
        kernels="results/kernels/{model}.npz",
        index="results/kernels/{model}.parquet",
        fits="results/fits/{model}.parquet",
    output:
        spread="results/spread/{model}.parquet",
    log:
        "logs/spread_kernels/{model}.log",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/spread_kernels.py"


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
        "logs/figures/fitted_scales_{model}.log",
    params:
        figure="fitted_scales",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


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
        "logs/figures/residuals_{model}.log",
    params:
        figure="residuals",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


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
        "logs/figures/explained_share_{model}.log",
    params:
        figure="explained_share",
    localrule: True
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"
