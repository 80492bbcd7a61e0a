"""Rule figure_residuals: residual distributions per method and type, every kernel of a model."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.scalespace import plot_residuals
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_residuals(read_parquet(smk.input.fits), smk.wildcards.model)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
