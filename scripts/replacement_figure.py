"""Rules figure_replacement_*: replacement tables -> figure (PNG + PDF)."""

import pandas as pd

from masterkey.plotting.replacement_figures import plot_replacement_accuracy, plot_replacement_stages
from masterkey.workflow import run_rule

FIGURES = {"replacement_accuracy": plot_replacement_accuracy, "replacement_stages": plot_replacement_stages}


def main(smk):
    FIGURES[smk.params.figure](pd.read_csv(smk.input.table), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
