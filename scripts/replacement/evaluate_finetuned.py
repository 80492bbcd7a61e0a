"""Rule evaluate_finetuned: a network fine-tuned with frozen replaced kernels on one evaluation set
-> JSON record of variant finetuned-<variant> (accuracy where labelled, fidelity to the unmodified
network's reference logits)."""

from masterkey.core.io import write_json
from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.replacement.evaluation import evaluate_trained


def main(smk):
    params = smk.params
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    record = evaluate_trained(
        model,
        meta,
        smk.wildcards.model,
        smk.wildcards.dataset,
        smk.input.get("reference"),
        demo=DemoSettings.from_section(params.demo),
        seed=params.seed,
        cache_path=smk.input.get("eval_cache"),
        natural_images=params.fidelity_images,
        batch_size=params.batch_size,
        max_images=params.max_images,
    )
    write_json(record, smk.output.result)
    print(record)


run_rule(main, snakemake)
