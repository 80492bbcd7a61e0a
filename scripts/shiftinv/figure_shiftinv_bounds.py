"""Rule figure_shiftinv_bounds: ([C]) measured shift instability and RMax-CMod discrepancy against
their bounds, one point per filter of every DT-CWPT depth and first layer with max pooling."""

from masterkey.core.rules import run_rule
from masterkey.plotting.shiftinv import plot_bounds_scatter
from masterkey.plotting.style import save_figure
from masterkey.shiftinv.measures import filter_banks


def main(smk):
    frames = filter_banks(smk.params.depths, smk.input.dtcwpt, smk.params.networks, smk.input.networks)
    save_figure(plot_bounds_scatter(frames), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
