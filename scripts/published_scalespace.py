"""Rule published_scalespace: spread measures and every fit of the 8 published filters."""

from masterkey.published import load_master_key_filters
from masterkey.published_tables import published_fits_table, published_spread_table
from masterkey.tables import write_table
from masterkey.workflow import run_rule


def main(smk):
    filters = load_master_key_filters(smk.input.filters)
    fits = published_fits_table(filters)
    types = fits.drop_duplicates("filter")["model"].tolist()
    spread = published_spread_table(filters, types)
    for table, paths, caption, label in (
        (spread, smk.output.spread, "Spatial spread measures of the 8 published filters", "spread"),
        (fits, smk.output.fits, "Idealized scale-space models fitted to the 8 published filters", "fits"),
    ):
        write_table(table, *paths, caption=caption, label=f"tab:published-{label}")
    print(fits.to_string())


run_rule(main, snakemake)
