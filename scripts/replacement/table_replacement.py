"""Rule table_replacement: per-variant JSON records -> the replacement table (CSV, MD, TeX)."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.replacement.tables import CAPTIONS, read_replacement_table


def main(smk):
    table = read_replacement_table(smk.input.variants, smk.params.variants)
    write_table(table, *smk.output, caption=CAPTIONS["variants"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
