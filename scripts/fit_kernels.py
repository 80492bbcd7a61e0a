"""Rule fit_kernels: type selection and every fitting method for every depthwise kernel of a model."""

import pandas as pd

from masterkey.io import atomic_paths
from masterkey.kernels import load_kernels
from masterkey.model_fits import fit_model_kernels
from masterkey.workflow import run_rule


def main(smk):
    arrays = load_kernels(smk.input.kernels)
    index = pd.read_parquet(smk.input.index)
    fits = fit_model_kernels(arrays, index, smk.wildcards.model, methods=smk.params.methods)
    with atomic_paths(smk.output.fits) as (temp,):
        fits.to_parquet(temp, index=False)
    kernels = fits.drop_duplicates(["kernel_size", "filter"])
    print(f"{len(kernels):,} kernels, types: {kernels['type'].value_counts(dropna=False).to_dict()}")
    print(fits.groupby("method")[["sigma_x", "sigma_y", "rel_l2"]].median().to_string())


run_rule(main, snakemake)
