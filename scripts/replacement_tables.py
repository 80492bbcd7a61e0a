"""Rules replacement_table / replacement_stages_table: per-variant JSONs -> table (CSV, MD, TeX)."""

import json

from masterkey.replacement import LEARNED, replacement_table, stages_table
from masterkey.tables import write_table
from masterkey.workflow import run_rule

CAPTIONS = {
    "variants": (
        "Accuracy with the learned depthwise kernels replaced (no retraining); "
        "drops are learned minus variant"
    ),
    "stages": "Accuracy with one stage's depthwise kernels replaced by the best idealized method",
}


def main(smk):
    results = [json.loads(open(path).read()) for path in smk.input.variants]
    if smk.params.kind == "variants":
        table = replacement_table(results, smk.params.variants)
    else:
        stages = [record for path in smk.input.stages for record in json.loads(open(path).read())["stages"]]
        table = stages_table(stages, [r for r in results if r["variant"] == LEARNED])
    write_table(table, *smk.output, caption=CAPTIONS[smk.params.kind])
    print(table.to_string(index=False))


run_rule(main, snakemake)
