"""Rule spread_kernels: spread measures of every depthwise kernel of a model (band kernels included)."""

from masterkey.core.io import read_parquet, write_parquet
from masterkey.core.rules import run_rule
from masterkey.kernels.store import load_index, load_kernels
from masterkey.scalespace.models import spread_model_kernels


def main(smk):
    arrays, index = load_kernels(smk.input.kernels), load_index(smk.input.index)
    spread = spread_model_kernels(arrays, index, read_parquet(smk.input.fits), smk.wildcards.model)
    write_parquet(spread, smk.output.spread)
    print(spread.groupby("kernel_size")[["V_xx", "V_yy"]].median().to_string())
    print(spread.groupby("type")[["correlation", "offset"]].median().to_string())


run_rule(main, snakemake)
