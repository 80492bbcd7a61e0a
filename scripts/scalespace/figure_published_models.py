"""Rule figure_published_models: the 8 published filters beside their idealized model per method."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.data.published import load_master_key_filters
from masterkey.plotting.scalespace import plot_published_models
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_published_models(load_master_key_filters(smk.input.filters), pd.read_csv(smk.input.fits))
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
