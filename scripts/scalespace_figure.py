"""Rules figure_*: one scale-space figure (and its table, where it has one) per rule."""

import pandas as pd

from masterkey.model_fits import explained_share
from masterkey.plotting import scalespace_figures as figures
from masterkey.plotting.style import save_figure
from masterkey.published import load_master_key_filters
from masterkey.tables import write_table
from masterkey.workflow import run_rule


def main(smk):
    name = smk.params.figure
    if name == "published_models":
        filters = load_master_key_filters(smk.input.filters)
        fig = figures.plot_published_models(filters, pd.read_csv(smk.input.fits))
    elif name == "published_spread":
        filters = load_master_key_filters(smk.input.filters)
        fig = figures.plot_published_spread(filters, pd.read_csv(smk.input.spread))
    else:
        fits, model = pd.read_parquet(smk.input.fits), smk.wildcards.model
        if name == "fitted_scales":
            fig = figures.plot_fitted_scales(fits, model)
        elif name == "residuals":
            fig = figures.plot_residuals(fits, model)
        elif name == "explained_share":
            share = explained_share(fits)
            write_table(
                share,
                *smk.output.tables,
                caption=f"{model}: share of kernels explained by their idealized model",
                label=f"tab:explained-share-{model}",
            )
            fig = figures.plot_explained_share(share, model)
        else:
            raise ValueError(f"unknown figure {name!r}")
    save_figure(fig, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
