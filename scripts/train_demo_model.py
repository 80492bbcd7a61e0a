"""Rule train_demo_model: train the embedded demo ConvNeXt -> safetensors + sidecar + training log."""

from masterkey.io import atomic_paths
from masterkey.published import load_master_key_filters
from masterkey.train_demo import train_demo_model
from masterkey.weights import model_metadata, save_checkpoint
from masterkey.workflow import run_rule


def main(smk):
    demo = smk.params.demo
    references = load_master_key_filters(smk.input.published)
    model, _, log, summary = train_demo_model(demo, smk.params.seed, references, threads=smk.threads)
    kwargs = {"num_classes": len(summary["classes"]), **demo["model_kwargs"]}
    meta = model_metadata(model, "demo", source="trained from scratch (embedded demo)", model_kwargs=kwargs)
    meta.update(licence="same as this repository", training=summary, config=demo, seed=smk.params.seed)
    with atomic_paths(smk.output.training_log) as (temp,):
        log.to_csv(temp, index=False)
    save_checkpoint(model, meta, smk.output.weights, smk.output.meta)
    before, after = summary["structure_before"], summary["structure_after"]
    print(
        f"validation accuracy {summary['val_accuracy']:.3f} (chance {summary['chance_accuracy']:.3f}); "
        f"central 3x3 share {before['centre_share_mean']:.3f} -> {after['centre_share_mean']:.3f}; "
        f"median max |cos| to published 8 {before['max_abs_cosine_median']:.3f} -> "
        f"{after['max_abs_cosine_median']:.3f}; {summary['train_seconds']} s"
    )


run_rule(main, snakemake)
