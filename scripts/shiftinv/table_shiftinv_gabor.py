"""Rule table_shiftinv_gabor: ([C]) Gabor-likeness of the DT-CWPT filters, mean and spread per depth."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.shiftinv.tables import CAPTIONS, gabor_table


def main(smk):
    frames = {d: read_parquet(p) for d, p in zip(smk.params.depths, smk.input.dtcwpt, strict=True)}
    table = gabor_table(frames)
    write_table(table, *smk.output, caption=CAPTIONS["gabor"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
