"""Rule figure_share_vs_accuracy: classified share against published top-1, per model, size and stage."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.plotting.clustering import plot_share_vs_accuracy
from masterkey.plotting.style import save_figure


def main(smk):
    table, classification = pd.read_csv(smk.input.table), pd.read_csv(smk.input.classification)
    save_figure(plot_share_vs_accuracy(table, classification), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
