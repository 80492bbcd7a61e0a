"""Rule figure_replacement_stages: top-1 drop when one stage is replaced by the best idealized method."""

import pandas as pd

from masterkey.core.rules import run_rule
from masterkey.plotting.replacement import plot_replacement_stages
from masterkey.plotting.style import save_figure


def main(smk):
    save_figure(plot_replacement_stages(pd.read_csv(smk.input.table)), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
