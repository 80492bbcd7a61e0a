"""Rule fetch_published_filters: the 8 published master key filters (URL or local path)."""

from masterkey.fetch import fetch_text_resource
from masterkey.published import load_master_key_filters
from masterkey.workflow import run_rule


def main(smk):
    path = fetch_text_resource(
        smk.params.source,
        smk.output.filters,
        config_key="published_filters",
        validate=load_master_key_filters,
    )
    print(f"{len(load_master_key_filters(path))} filters from {smk.params.source} -> {path}")


run_rule(main, snakemake)
