# Stage 3: scale-space modelling - spread measures and idealized-model fits
# of the 8 published filters and of every depthwise kernel of every model.


rule published_scalespace:
    input:
        filters=PUBLISHED_FILTERS,
    output:
        spread=multiext("results/published/spread", ".csv", ".md", ".tex"),
        fits=multiext("results/published/fits", ".csv", ".md", ".tex"),
    log:
        "logs/published_scalespace.log",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/published_scalespace.py"


rule figure_published_models:
    input:
        filters=PUBLISHED_FILTERS,
        fits="results/published/fits.csv",
    output:
        png="results/figures/published_models.png",
        pdf="results/figures/published_models.pdf",
    log:
        "logs/figures/published_models.log",
    params:
        figure="published_models",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


rule figure_published_spread:
    input:
        filters=PUBLISHED_FILTERS,
        spread="results/published/spread.csv",
    output:
        png="results/figures/published_spread.png",
        pdf="results/figures/published_spread.pdf",
    log:
        "logs/figures/published_spread.log",
    params:
        figure="published_spread",
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
        png="results/figures/fitted_scales_{model}.png",
        pdf="results/figures/fitted_scales_{model}.pdf",
    log:
        "logs/figures/fitted_scales_{model}.log",
    params:
        figure="fitted_scales",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


rule figure_residuals:
    input:
        fits="results/fits/{model}.parquet",
    output:
        png="results/figures/residuals_{model}.png",
        pdf="results/figures/residuals_{model}.pdf",
    log:
        "logs/figures/residuals_{model}.log",
    params:
        figure="residuals",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"


rule figure_explained_share:
    input:
        fits="results/fits/{model}.parquet",
    output:
        png="results/figures/explained_share_{model}.png",
        pdf="results/figures/explained_share_{model}.pdf",
        tables=multiext("results/tables/explained_share_{model}", ".csv", ".md"),
    log:
        "logs/figures/explained_share_{model}.log",
    params:
        figure="explained_share",
    conda:
        "../envs/masterkey.yaml"
    script:
        "../../scripts/scalespace_figure.py"
