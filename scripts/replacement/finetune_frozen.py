"""Rule finetune_frozen: a replacement variant of the demo model, retrained with its depthwise
kernels frozen, then evaluated on the held-out split -> JSON."""

from masterkey.core.io import write_json
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import load_variant_inputs
from masterkey.replacement.finetune import finetune_variant
from masterkey.replacement.settings import FinetuneSettings


def main(smk):
    params, variant = smk.params, smk.wildcards.variant
    model, _ = load_checkpoint(smk.input.weights, smk.input.meta)
    record = finetune_variant(
        model,
        smk.wildcards.model,
        variant,
        load_variant_inputs(variant, smk.input),
        DemoSettings.from_section(params.demo),
        FinetuneSettings.from_section(params.finetune),
        params.seed,
        batch_size=params.batch_size,
        max_images=params.max_images,
    )
    write_json(record, smk.output.result)
    print(record)


run_rule(main, snakemake)
