"""Rule finetune_frozen: a checkpoint with its depthwise kernels replaced by a variant and frozen,
fine-tuned with the configured recipe on torchrun's processes -> checkpoint + sidecar + metrics CSV."""

from masterkey.core.rules import run_rule
from masterkey.replacement.finetune import training_runtime
from masterkey.training.distributed import launch


def main(smk):
    training = dict(smk.params.training)
    params = dict(
        model_name=smk.wildcards.model,
        variant=smk.wildcards.variant,
        inputs=dict(smk.input),
        run_dir=smk.params.run_dir,
        outputs=dict(smk.output),
        eval_cache=smk.input.get("eval_cache"),
        **training,
    )
    nproc = training_runtime(smk.wildcards.model, training["run"]).num_processes()
    launch("masterkey.replacement.finetune:finetune_frozen_task", params, nproc, threads=smk.threads)


run_rule(main, snakemake)
