"""Rule reference_logits: the unmodified network's logits on one evaluation set -> .npy (N, C)."""

from masterkey.core.io import write_npy
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import load_eval_set, reference_logits


def main(smk):
    params = smk.params
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    eval_set = load_eval_set(smk.wildcards.dataset, meta, demo=DemoSettings.from_section(params.demo),
                             seed=params.seed, cache_path=smk.input.get("eval_cache"),
                             natural_images=params.fidelity_images)  # fmt: skip
    logits = reference_logits(model, eval_set, batch_size=params.batch_size, max_images=params.max_images)
    write_npy(logits, smk.output.logits)
    print(f"{smk.wildcards.model} on {eval_set.name}: logits {logits.shape}")


run_rule(main, snakemake)
