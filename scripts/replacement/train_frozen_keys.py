"""Rule train_frozen_keys ([Q]): the architecture trained from scratch with its depthwise filters
frozen to K keys (or learned), on torchrun's processes -> checkpoint + sidecar + metrics CSV."""

from masterkey.core.rules import run_rule
from masterkey.training.distributed import launch
from masterkey.training.engine import RunSettings


def main(smk):
    training = dict(smk.params.training)
    params = dict(
        model_name=smk.wildcards.model,
        keys=smk.params.key_set,
        num_keys=smk.params.num_keys,
        inputs=dict(smk.input),
        run_dir=smk.params.run_dir,
        outputs=dict(smk.output),
        eval_cache=smk.params.eval_cache,
        **training,
    )
    nproc = RunSettings.from_section(training["run"]).num_processes()
    launch("masterkey.replacement.finetune:frozen_keys_task", params, nproc, threads=smk.threads)


run_rule(main, snakemake)
