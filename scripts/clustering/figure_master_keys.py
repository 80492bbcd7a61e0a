"""Rule figure_master_keys: the K master key filters of every kernel size; for the published
filters' size (7x7) with their closest published filter."""

import pandas as pd

from masterkey.clustering.master_keys import load_master_keys
from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_master_keys
from masterkey.plotting.style import save_figure


def main(smk):
    keys = load_master_keys(smk.input.master_keys, int(smk.wildcards.num_keys))
    figure = plot_master_keys(keys, pd.read_csv(smk.input.key_table), pd.read_csv(smk.input.comparison))
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
