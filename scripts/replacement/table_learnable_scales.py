"""Rule table_learnable_scales: ([B] Sec. 5) the movement of the learnable scales per stage beside the
four-way top-1 (learned frozen, idealized frozen, learnable discrete / sampled)."""

import pandas as pd

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.replacement.learnable import CAPTION, learnable_table


def main(smk):
    table = learnable_table(
        read_parquet(smk.input.scales), pd.read_csv(smk.input.replacement), smk.params.datasets
    )
    write_table(table, *smk.output, caption=CAPTION)
    print(table.to_string(index=False))


run_rule(main, snakemake)
