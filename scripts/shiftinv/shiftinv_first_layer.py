"""Rule shiftinv_first_layer: ([C]) the first layer of a network (and the max pooling after it)
described and measured like the DT-CWPT filters -> kernels npz + per-filter table."""

from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.shiftinv.measures import load_images, measure_first_layer, save_filters


def main(smk):
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    layer, frame = measure_first_layer(model, meta, load_images(smk.input.images), **smk.params)
    save_filters(smk.output.filters, kernels=layer.kernels)
    write_parquet(frame, smk.output.measures)
    why = layer.reason or f"max pooling '{layer.pool}' (q = {layer.q}): the theorem applies"
    shape = "x".join(map(str, layer.kernels.shape))
    print(f"{smk.wildcards.network}: first layer '{layer.layer}' ({shape}), stride {layer.stride}; {why}")


run_rule(main, snakemake)
