"""Rule table_frozen_keys: ([Q]) the runs' metrics logs -> final/best validation accuracy per run."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.replacement.tables import CAPTIONS, frozen_keys_curves, frozen_keys_table


def main(smk):
    table = frozen_keys_table(frozen_keys_curves(smk.params.runs))
    write_table(table, *smk.output, caption=CAPTIONS["frozen_keys"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
