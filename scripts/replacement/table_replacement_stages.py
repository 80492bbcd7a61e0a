"""Rule table_replacement_stages: per-stage JSON records -> the one-stage replacement table (CSV, MD, TeX)."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.replacement.tables import CAPTIONS, read_stages_table


def main(smk):
    table = read_stages_table(smk.input.stages, smk.input.learned)
    write_table(table, *smk.output, caption=CAPTIONS["stages"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
