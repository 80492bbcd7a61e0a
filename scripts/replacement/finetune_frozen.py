"""Rule finetune_frozen: a checkpoint with its depthwise kernels replaced by a variant and frozen,
fine-tuned with the configured recipe on torchrun's processes -> checkpoint + sidecar + metrics CSV."""

from masterkey.core.rules import run_rule
from masterkey.replacement.finetune import launch_task


def main(smk):
    launch_task(
        "masterkey.replacement.finetune:finetune_frozen_task",
        smk.wildcards.model,
        dict(smk.params.training),
        smk.threads,
        variant=smk.wildcards.variant,
        inputs=dict(smk.input),
        run_dir=smk.params.run_dir,
        outputs=dict(smk.output),
        eval_cache=smk.input.get("eval_cache"),
    )


run_rule(main, snakemake)
