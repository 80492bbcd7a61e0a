"""Rule figure_shiftinv_gamma: ([C]) gamma_q(m theta) over the frequency plane ("pathological
frequencies") for one subsampling factor m."""

from masterkey.core.rules import run_rule
from masterkey.plotting.shiftinv import plot_gamma_map
from masterkey.plotting.style import save_figure


def main(smk):
    save_figure(plot_gamma_map(int(smk.wildcards.m), smk.params.q), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
