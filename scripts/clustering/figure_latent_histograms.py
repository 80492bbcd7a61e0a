"""Rule figure_latent_histograms: histogram of the latent code per kernel size and model with the
cluster boundaries."""

import pandas as pd

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_latent_histograms
from masterkey.plotting.style import save_figure


def main(smk):
    assignments, clusters = read_parquet(smk.input.assignments), pd.read_csv(smk.input.clusters)
    save_figure(plot_latent_histograms(assignments, clusters), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
