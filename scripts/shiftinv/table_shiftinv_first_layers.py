"""Rule table_shiftinv_first_layers: ([C]) the first layer of every configured network: pooling,
Gabor-likeness and measured shift instability."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.shiftinv.tables import CAPTIONS, first_layers_table


def main(smk):
    frames = {n: read_parquet(p) for n, p in zip(smk.params.networks, smk.input.networks, strict=True)}
    table = first_layers_table(frames)
    write_table(table, *smk.output, caption=CAPTIONS["first_layers"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
