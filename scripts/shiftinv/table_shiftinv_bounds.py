"""Rule table_shiftinv_bounds: ([C]) measured against bound per filter bank (DT-CWPT depths, first
layers): shares below the bounds, means, correlation with gamma_q(m theta)."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.shiftinv.measures import filter_banks
from masterkey.shiftinv.tables import CAPTIONS, bounds_table


def main(smk):
    frames = filter_banks(smk.params.depths, smk.input.dtcwpt, smk.params.networks, smk.input.networks)
    table = bounds_table(frames)
    write_table(table, *smk.output, caption=CAPTIONS["bounds"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
