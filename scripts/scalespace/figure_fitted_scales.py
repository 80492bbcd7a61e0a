"""Rule figure_fitted_scales: fitted scales per stage and method, every kernel of a model."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.scalespace import plot_fitted_scales
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_fitted_scales(read_parquet(smk.input.fits), smk.wildcards.model)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
