"""Rule figure_shiftinv_first_layer: ([C]) a network's first-layer filters sorted by shift
instability, and their instability on the Fourier plane."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.shiftinv import plot_first_layer
from masterkey.plotting.style import save_figure
from masterkey.shiftinv.descriptors import monochrome_part
from masterkey.shiftinv.measures import load_filters


def main(smk):
    monochrome, _ = monochrome_part(load_filters(smk.input.filters)["kernels"])
    figure = plot_first_layer(monochrome, read_parquet(smk.input.measures), smk.wildcards.network)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
