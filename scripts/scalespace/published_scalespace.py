"""Rule published_scalespace: spread measures and every fit of the 8 published filters."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.data.published import load_master_key_filters
from masterkey.scalespace.published import (
    FITS_CAPTION,
    SPREAD_CAPTION,
    published_fits_table,
    published_spread_table,
)


def main(smk):
    filters = load_master_key_filters(smk.input.filters)
    fits = published_fits_table(filters)
    spread = published_spread_table(filters, fits.drop_duplicates("filter")["type"].tolist())
    write_table(spread, *smk.output.spread, caption=SPREAD_CAPTION, label="tab:published-spread")
    write_table(fits, *smk.output.fits, caption=FITS_CAPTION, label="tab:published-fits")
    print(fits.to_string())


run_rule(main, snakemake)
