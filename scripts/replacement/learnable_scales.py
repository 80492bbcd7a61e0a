"""Rule learnable_scales: ([B] Sec. 5) the initial and trained scales in the sidecars of the
learnable-scale fine-tunings -> one long parquet (model, variant, layer, stage, channel, axis)."""

from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.nets.checkpoints import read_metadata
from masterkey.replacement.learnable import scales_frame


def main(smk):
    runs = [tuple(run) for run in smk.params.runs]
    scales = scales_frame(
        {run: read_metadata(path) for run, path in zip(runs, smk.input.sidecars, strict=True)}
    )
    write_parquet(scales, smk.output[0])
    print(f"{len(scales):,} scales of {len(runs)} learnable fine-tunings")


run_rule(main, snakemake)
