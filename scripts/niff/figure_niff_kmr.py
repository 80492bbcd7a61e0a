"""Rule figure_niff_kmr: ([D]) kernel mass ratio against window size per stage, trained vs init."""

from masterkey.plotting.niff import plot_kmr_curves

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_kmr_curves(read_parquet(smk.input.kmr), smk.wildcards.run)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
