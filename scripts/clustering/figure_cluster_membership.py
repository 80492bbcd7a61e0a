"""Rule figure_cluster_membership: per-layer cluster proportions of one model, per kernel size."""

import pandas as pd

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_cluster_membership
from masterkey.plotting.style import save_figure


def main(smk):
    assignments, clusters = read_parquet(smk.input.assignments), pd.read_csv(smk.input.clusters)
    save_figure(
        plot_cluster_membership(assignments, clusters, smk.wildcards.model), smk.output.png, smk.output.pdf
    )


run_rule(main, snakemake)
