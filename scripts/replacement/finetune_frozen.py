"""Rule finetune_frozen: a replacement variant of the demo model, retrained with its depthwise
kernels frozen, then evaluated on the held-out split and the natural-image set -> JSON each."""

from masterkey.core.io import write_json
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import load_eval_set, load_reference_logits, load_variant_inputs
from masterkey.replacement.finetune import finetune_variant
from masterkey.replacement.settings import FinetuneSettings


def main(smk):
    params, variant = smk.params, smk.wildcards.variant
    demo = DemoSettings.from_section(params.demo)
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    evaluations = {}
    for dataset in smk.output.keys():
        eval_set = load_eval_set(dataset, meta, demo=demo, seed=params.seed,
                                 natural_images=params.fidelity_images)  # fmt: skip
        reference = load_reference_logits(smk.input[f"reference_{dataset}"], eval_set, params.max_images)
        evaluations[dataset] = (eval_set, reference)
    records = finetune_variant(model, smk.wildcards.model, variant, load_variant_inputs(variant, smk.input),
                               demo, FinetuneSettings.from_section(params.finetune), params.seed, evaluations,
                               batch_size=params.batch_size, max_images=params.max_images)  # fmt: skip
    for dataset, record in records.items():
        write_json(record, smk.output[dataset])
        print(record)


run_rule(main, snakemake)
