"""Rule shiftinv_dtcwpt: ([C]) every complex filter of the DT-CWPT of depth J described and measured
(RMax vs CMod, 1-pixel shifts) on the grayscale crops -> filters npz + per-filter table."""

from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.shiftinv.measures import load_images, measure_dtcwpt, save_filters


def main(smk):
    filters, frame = measure_dtcwpt(int(smk.wildcards.depth), load_images(smk.input.images), **smk.params)
    save_filters(smk.output.filters, filters=filters)
    write_parquet(frame, smk.output.measures)
    print(frame.drop(columns="filter").describe().loc[["mean", "50%"]].T.to_string())


run_rule(main, snakemake)
