"""Rule figure_replacement_accuracy: top-1 drop per replacement variant and model."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.plotting.replacement import plot_replacement_accuracy
from masterkey.plotting.style import save_figure


def main(smk):
    save_figure(plot_replacement_accuracy(pd.read_csv(smk.input.table)), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
