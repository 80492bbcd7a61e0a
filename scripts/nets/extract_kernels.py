"""Rule extract_kernels: every depthwise kernel of a model -> npz (per kernel size) + index parquet."""

from masterkey.core.rules import run_rule
from masterkey.kernels.store import save_kernels
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.nets.depthwise import extract_kernels


def main(smk):
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    arrays, index = extract_kernels(model, smk.wildcards.model, meta.get("input_size"), smk.params.niff_crop)
    save_kernels(arrays, index, smk.output.kernels, smk.output.index)
    sizes = ", ".join(f"{key}: {len(array):,}" for key, array in arrays.items())
    layers = index["layer"].nunique()
    print(f"{smk.wildcards.model}: {len(index):,} depthwise kernels in {layers} layers ({sizes})")


run_rule(main, snakemake)
