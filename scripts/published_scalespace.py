"""Rule published_scalespace: spread measures and every fit of the 8 published filters."""

from masterkey.published import load_master_key_filters
from masterkey.published_tables import published_fits_table, published_spread_table, write_table
from masterkey.workflow import run_rule


def main(smk):
    filters = load_master_key_filters(smk.input.filters)
    fits = published_fits_table(filters)
    types = fits.drop_duplicates("filter")["model"].tolist()
    spread = published_spread_table(filters, types)
    for table, paths, caption in (
        (spread, smk.output.spread, "Spatial spread measures of the 8 published master key filters"),
        (fits, smk.output.fits, "Idealized scale-space models fitted to the 8 published filters"),
    ):
        for path in paths:
            write_table(table, path, caption=caption)
    print(fits.to_string())


run_rule(main, snakemake)
