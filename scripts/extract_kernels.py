"""Rule extract_kernels: every depthwise kernel of a model -> npz (per kernel size) + index parquet."""

from masterkey.kernels import extract_kernels, save_kernels
from masterkey.weights import load_checkpoint
from masterkey.workflow import run_rule


def main(smk):
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    arrays, index = extract_kernels(model, smk.wildcards.model)
    save_kernels(arrays, index, smk.output.kernels, smk.output.index)
    sizes = ", ".join(f"{key}: {len(array):,}" for key, array in arrays.items())
    print(
        f"{smk.wildcards.model}: {len(index):,} depthwise kernels "
        f"in {index['layer'].nunique()} layers ({sizes})"
    )


run_rule(main, snakemake)
