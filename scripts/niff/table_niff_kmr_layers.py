"""Rule table_niff_kmr_layers: ([D]) effective kernel sizes and kernel mass ratios per run, state, layer."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.niff.tables import CAPTIONS, kmr_table


def main(smk):
    frames = {run: read_parquet(path) for run, path in zip(smk.params.runs, smk.input.kmr, strict=True)}
    table = kmr_table(frames, by="layer")
    write_table(table, *smk.output, caption=CAPTIONS["kmr_layers"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
