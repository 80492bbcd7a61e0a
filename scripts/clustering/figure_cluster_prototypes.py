"""Rule figure_cluster_prototypes: cluster prototypes (member mean, decoded centroid) with type labels."""

import numpy as np
import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_prototypes
from masterkey.plotting.style import save_figure


def main(smk):
    clusters = pd.read_csv(smk.input.clusters)
    figure = plot_prototypes(np.load(smk.input.prototypes), clusters, np.load(smk.input.decoded))
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
