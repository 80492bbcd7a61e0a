"""Rule figure_niff_kernels: ([D]) a gallery of spatial kernels per stage, full size and centre."""

from masterkey.plotting.niff import plot_kernel_gallery

from masterkey.core.rules import run_rule
from masterkey.niff.analysis import load_state_kernels
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_kernel_gallery(load_state_kernels(smk.input.kernels), smk.wildcards.run)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
