"""Rule figure_niff_pca: ([D]) principal components of the trained spatial kernels per stage."""

from masterkey.plotting.niff import plot_kernel_pca

from masterkey.core.rules import run_rule
from masterkey.niff.analysis import load_state_kernels
from masterkey.plotting.style import save_figure


def main(smk):
    figure = plot_kernel_pca(load_state_kernels(smk.input.kernels), smk.wildcards.run)
    save_figure(figure, smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
