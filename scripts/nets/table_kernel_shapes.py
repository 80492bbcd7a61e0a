"""Rule table_kernel_shapes: a model's depthwise kernels per shape and the analyses that use each shape."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.kernels.shapes import kernel_shape_table, kernel_shapes_caption
from masterkey.kernels.store import load_index


def main(smk):
    model = smk.wildcards.model
    table = kernel_shape_table(load_index(smk.input.index))
    caption, label = kernel_shapes_caption(model), f"tab:kernel-shapes-{model}"
    write_table(table, *smk.output.tables, caption=caption, label=label)
    print(table.to_string(index=False))


run_rule(main, snakemake)
