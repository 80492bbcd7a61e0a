"""Rule train_niff: ([D]) a run on CIFAR-10 or ImageNet on torchrun's processes -> trained and
initial checkpoints + metrics CSV."""

from masterkey.core.rules import run_rule
from masterkey.niff.training import launch_run


def main(smk):
    paths = {**smk.params.paths, "eval_cache": smk.input.get("eval_cache")}
    params = smk.params
    launch_run(
        params.run,
        params.niff,
        params.training,
        paths,
        params.seed,
        params.run_dir,
        dict(smk.output),
        smk.threads,
    )


run_rule(main, snakemake)
