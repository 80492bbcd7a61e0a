"""Rule finetune_frozen: a replacement variant of the demo model, retrained with its depthwise
kernels frozen, then evaluated on the held-out split and the natural-image set -> JSON each."""

from masterkey.core.io import write_json_each
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import load_evaluations, load_variant_inputs
from masterkey.replacement.finetune import finetune_variant
from masterkey.replacement.settings import FinetuneSettings


def main(smk):
    params, variant = smk.params, smk.wildcards.variant
    demo = DemoSettings.from_section(params.demo)
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    references = {dataset: smk.input[f"reference_{dataset}"] for dataset in smk.output.keys()}
    evaluations = load_evaluations(references, meta, max_images=params.max_images, demo=demo,
                                   seed=params.seed, natural_images=params.fidelity_images)  # fmt: skip
    records = finetune_variant(model, smk.wildcards.model, variant, load_variant_inputs(variant, smk.input),
                               demo, FinetuneSettings.from_section(params.finetune), params.seed, evaluations,
                               batch_size=params.batch_size, max_images=params.max_images)  # fmt: skip
    write_json_each(records, smk.output)
    print(records)


run_rule(main, snakemake)
