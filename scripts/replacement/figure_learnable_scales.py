"""Rule figure_learnable_scales: ([B] Sec. 5) top-1 of the learnable-scale fine-tunings against the
frozen baselines, and the scales per stage at initialisation and trained, for one model."""

import pandas as pd

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.replacement import plot_learnable_scales
from masterkey.plotting.style import save_figure


def main(smk):
    table = pd.read_csv(smk.input.table, dtype={"stage": str})
    figure = plot_learnable_scales(read_parquet(smk.input.scales), table, smk.wildcards.model)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
