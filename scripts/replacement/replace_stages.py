"""Rule replace_stages: replace one stage at a time by the best idealized method, on one evaluation
set -> JSON."""

from masterkey.core.io import read_json, write_json
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import (
    best_idealized_method,
    evaluate_stages,
    load_eval_set,
    load_reference_logits,
    load_variant_inputs,
)
from masterkey.replacement.variants import idealized_name


def main(smk):
    params = smk.params
    method = best_idealized_method([read_json(path) for path in smk.input.idealized])
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    eval_set = load_eval_set(smk.wildcards.dataset, meta, demo=DemoSettings.from_section(params.demo),
                             seed=params.seed, cache_path=smk.input.get("eval_cache"),
                             natural_images=params.fidelity_images)  # fmt: skip
    reference = load_reference_logits(smk.input.reference, eval_set, params.max_images)
    inputs = load_variant_inputs(idealized_name(method), smk.input)
    result = evaluate_stages(model, smk.wildcards.model, method, inputs, eval_set, reference=reference,
                             seed=params.seed, batch_size=params.batch_size,
                             max_images=params.max_images)  # fmt: skip
    write_json(result, smk.output.result)


run_rule(main, snakemake)
