"""Rule train_frozen_keys: ([Q]) the architecture trained from scratch with its depthwise filters
frozen to K keys (or learned), on torchrun's processes -> checkpoint + sidecar + metrics CSV."""

from masterkey.core.rules import run_rule
from masterkey.replacement.finetune import training_runtime
from masterkey.training.distributed import launch


def main(smk):
    training = dict(smk.params.training)
    params = dict(
        model_name=smk.wildcards.model,
        keys=smk.params.key_set,
        assignment=smk.params.get("assignment", "best"),
        num_keys=smk.params.num_keys,
        inputs=dict(smk.input),
        run_dir=smk.params.run_dir,
        outputs=dict(smk.output),
        eval_cache=smk.input.get("eval_cache"),
        **training,
    )
    nproc = training_runtime(smk.wildcards.model, training["run"]).num_processes()
    launch("masterkey.replacement.finetune:frozen_keys_task", params, nproc, threads=smk.threads)


run_rule(main, snakemake)
