"""Rule replace_and_evaluate: one replacement variant of one model on one evaluation set -> JSON
(accuracy where the set has labels, fidelity to the unmodified network's reference logits)."""

from masterkey.core.io import write_json
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import (
    evaluate_variant,
    load_eval_set,
    load_reference_logits,
    load_variant_inputs,
)


def main(smk):
    params, variant = smk.params, smk.wildcards.variant
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    inputs = load_variant_inputs(variant, smk.input)
    eval_set = load_eval_set(smk.wildcards.dataset, meta, demo=DemoSettings.from_section(params.demo),
                             seed=params.seed, cache_path=smk.input.get("eval_cache"),
                             natural_images=params.fidelity_images)  # fmt: skip
    reference = load_reference_logits(smk.input.reference, eval_set, params.max_images)
    record = evaluate_variant(model, smk.wildcards.model, variant, inputs, eval_set, reference=reference,
                              seed=params.seed, batch_size=params.batch_size,
                              max_images=params.max_images)  # fmt: skip
    write_json(record, smk.output.result)
    print(record)


run_rule(main, snakemake)
