"""Rule table_niff_accuracy: ([D]) validation accuracy of every run beside its plain baseline."""

from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.nets.checkpoints import read_metadata
from masterkey.niff.tables import CAPTIONS, accuracy_table


def main(smk):
    runs = [
        {**entry, "meta": read_metadata(entry["meta"]),
         "baseline_meta": read_metadata(entry["baseline_meta"]) if entry["baseline_meta"] else None}
        for entry in smk.params.runs
    ]  # fmt: skip
    table = accuracy_table(runs)
    write_table(table, *smk.output, caption=CAPTIONS["accuracy"])
    print(table.to_string(index=False))


run_rule(main, snakemake)
