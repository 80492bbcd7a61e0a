"""Rule figure_frozen_keys: ([Q]) validation accuracy over training updates per run."""

from masterkey.core.rules import run_rule
from masterkey.plotting.replacement import plot_frozen_keys
from masterkey.plotting.style import save_figure
from masterkey.replacement.tables import frozen_keys_curves


def main(smk):
    save_figure(plot_frozen_keys(frozen_keys_curves(smk.params.runs)), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
