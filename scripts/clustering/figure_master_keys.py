"""Rule figure_master_keys: the K master key filters with their closest published filter."""

import numpy as np
import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_master_keys
from masterkey.plotting.style import save_figure


def main(smk):
    comparison = pd.read_csv(smk.input.comparison)
    figure = plot_master_keys(np.load(smk.input.master_keys), comparison)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
