"""Rule fit_kernels: type selection and every fitting method for every depthwise kernel of a model."""

from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.kernels.shapes import not_analysed_message
from masterkey.kernels.store import load_index, load_kernels
from masterkey.scalespace.models import fit_model_kernels


def main(smk):
    arrays, index = load_kernels(smk.input.kernels), load_index(smk.input.index)
    print(not_analysed_message(arrays, "fitted"))
    fits = fit_model_kernels(arrays, index, smk.wildcards.model, methods=smk.params.methods)
    write_parquet(fits, smk.output.fits)
    kernels = fits.drop_duplicates(["kernel_size", "filter"])
    print(f"{len(kernels):,} kernels, types: {kernels['type'].value_counts(dropna=False).to_dict()}")
    print(fits.groupby("method")[["sigma_x", "sigma_y", "rel_l2"]].median().to_string())


run_rule(main, snakemake)
