"""Rule replace_and_evaluate: one replacement variant of one model -> accuracy JSON."""

import torch

from masterkey.io import write_json
from masterkey.replacement import evaluate_variant, load_eval_set, load_rule_variant_inputs
from masterkey.weights import load_checkpoint
from masterkey.workflow import run_rule


def main(smk):
    torch.set_num_threads(max(1, smk.threads))
    variant = smk.wildcards.variant
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    arrays, index, fits, keys = load_rule_variant_inputs(variant, smk.input)
    eval_set = load_eval_set(meta, smk.params.demo, smk.params.seed, smk.input.get("eval_cache"))
    record = evaluate_variant(
        model,
        arrays,
        index,
        variant,
        eval_set,
        fits=fits,
        master_keys=keys,
        seed=smk.params.seed,
        batch_size=smk.params.batch_size,
        max_images=smk.params.max_images,
    )
    record = {"model": smk.wildcards.model, "dataset": eval_set.name, **record}
    write_json(record, smk.output.result)
    print(record)


run_rule(main, snakemake)
