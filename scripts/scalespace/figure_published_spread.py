"""Rule figure_published_spread: spatial spread (mean and covariance ellipse) of the 8 published filters."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.data.published import load_master_key_filters
from masterkey.plotting.scalespace import plot_published_spread
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_published_spread(load_master_key_filters(smk.input.filters), pd.read_csv(smk.input.spread))
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
