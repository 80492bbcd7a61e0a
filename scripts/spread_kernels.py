"""Rule spread_kernels: spread measures of every depthwise kernel of a model."""

import pandas as pd

from masterkey.io import atomic_paths
from masterkey.kernels import load_kernels
from masterkey.model_fits import spread_model_kernels
from masterkey.workflow import run_rule


def main(smk):
    arrays = load_kernels(smk.input.kernels)
    spread = spread_model_kernels(
        arrays, pd.read_parquet(smk.input.index), pd.read_parquet(smk.input.fits), smk.wildcards.model
    )
    with atomic_paths(smk.output.spread) as (temp,):
        spread.to_parquet(temp, index=False)
    print(spread.groupby("type")[["correlation", "offset"]].median().to_string())


run_rule(main, snakemake)
