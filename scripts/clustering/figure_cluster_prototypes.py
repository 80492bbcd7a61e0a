"""Rule figure_cluster_prototypes: cluster prototypes per kernel size (member mean, decoded centroid)
with type labels."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.kernels.store import load_kernels
from masterkey.plotting.clustering import plot_prototypes
from masterkey.plotting.style import save_figure


def main(smk):
    clusters = pd.read_csv(smk.input.clusters)
    figure = plot_prototypes(load_kernels(smk.input.prototypes), clusters, load_kernels(smk.input.decoded))
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
