"""Rule table_learnable_scales: ([B] Sec. 5) the initial and trained scales of every learnable-scale
fine-tuning -> long parquet + table of their movement per stage beside the four-way top-1."""

import pandas as pd

from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.nets.checkpoints import read_metadata
from masterkey.replacement.learnable import CAPTION, learnable_table, scales_frame


def main(smk):
    sidecars = {
        tuple(run): read_metadata(path) for run, path in zip(smk.params.runs, smk.input.sidecars, strict=True)
    }
    scales = scales_frame(sidecars)
    table = learnable_table(scales, pd.read_csv(smk.input.replacement), smk.params.datasets)
    write_parquet(scales, smk.output.scales)
    write_table(table, *smk.output[:3], caption=CAPTION)
    print(table.to_string(index=False))


run_rule(main, snakemake)
