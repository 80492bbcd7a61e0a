"""Rule figure_master_key_error_curve: mean approximation error against the number of kept candidates,
one panel per kernel size."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_error_curve
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_error_curve(pd.read_csv(smk.input.curve), int(smk.wildcards.num_keys))
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
