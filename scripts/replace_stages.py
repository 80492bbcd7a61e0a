"""Rule replace_stages: replace one stage at a time by the best idealized method -> JSON."""

import json

import torch

from masterkey.io import write_json
from masterkey.replacement import (
    best_idealized_method,
    evaluate_variant,
    load_eval_set,
    load_rule_variant_inputs,
)
from masterkey.weights import load_checkpoint
from masterkey.workflow import run_rule


def main(smk):
    torch.set_num_threads(max(1, smk.threads))
    method = best_idealized_method([json.loads(open(path).read()) for path in smk.input.idealized])
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    eval_set = load_eval_set(meta, smk.params.demo, smk.params.seed, smk.input.get("eval_cache"))
    variant = f"idealized-{method}"
    arrays, index, fits, _ = load_rule_variant_inputs(variant, smk.input)
    records = []
    for stage in sorted(index["stage"].unique().tolist()):
        record = evaluate_variant(
            model,
            arrays,
            index,
            f"stage{stage}-{variant}",
            eval_set,
            fits=fits,
            seed=smk.params.seed,
            batch_size=smk.params.batch_size,
            max_images=smk.params.max_images,
        )
        records.append(
            {
                "model": smk.wildcards.model,
                "dataset": eval_set.name,
                "stage": stage,
                "method": method,
                **record,
            }
        )
        print(records[-1])
    write_json({"model": smk.wildcards.model, "method": method, "stages": records}, smk.output.result)


run_rule(main, snakemake)
