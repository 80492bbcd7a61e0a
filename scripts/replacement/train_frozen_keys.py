"""Rule train_frozen_keys: ([Q]) the architecture trained from scratch with its depthwise filters
frozen to K keys (or learned), on torchrun's processes -> checkpoint + sidecar + metrics CSV."""

from masterkey.core.rules import run_rule
from masterkey.replacement.finetune import launch_task


def main(smk):
    launch_task(
        "masterkey.replacement.finetune:frozen_keys_task",
        smk.wildcards.model,
        dict(smk.params.training),
        smk.threads,
        keys=smk.params.key_set,
        assignment=smk.params.assignment,
        num_keys=smk.params.num_keys,
        inputs=dict(smk.input),
        run_dir=smk.params.run_dir,
        outputs=dict(smk.output),
        eval_cache=smk.input.get("eval_cache"),
    )


run_rule(main, snakemake)
