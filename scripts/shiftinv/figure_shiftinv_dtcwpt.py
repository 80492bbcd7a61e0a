"""Rule figure_shiftinv_dtcwpt: ([C]) per DT-CWPT filter of depth J, the measured RMax-CMod
discrepancy and RMax shift instability on the Fourier plane, beside gamma_q(m theta)."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.plotting.shiftinv import plot_fourier_layout
from masterkey.plotting.style import save_figure
from masterkey.shiftinv.tables import dtcwpt_label


def main(smk):
    frame = read_parquet(smk.input.measures)
    title = (
        f"{dtcwpt_label(int(smk.wildcards.depth))}: {len(frame)} filters, m = {frame['subsampling'].iloc[0]}"
    )
    save_figure(plot_fourier_layout(frame, title), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
