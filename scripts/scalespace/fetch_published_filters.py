"""Rule fetch_published_filters: the 8 published master key filters (bundled copy, URL or local path)."""

from masterkey.core.rules import run_rule
from masterkey.data.published import BUNDLED_FILTERS, fetch_published_filters, load_master_key_filters


def main(smk):
    path = fetch_published_filters(smk.params.source, smk.output.filters)
    print(
        f"{len(load_master_key_filters(path))} filters from {smk.params.source or BUNDLED_FILTERS} -> {path}"
    )


run_rule(main, snakemake)
