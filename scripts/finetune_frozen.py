"""Rule finetune_frozen: a replacement variant of the demo model, retrained with its depthwise
kernels frozen, then evaluated on the held-out split -> JSON."""

import time

import torch

from masterkey.demo_data import demo_dataset
from masterkey.errors import UserError
from masterkey.evaluation import demo_split_eval_set, evaluate
from masterkey.io import write_json
from masterkey.replacement import apply_variant, load_rule_variant_inputs
from masterkey.train_demo import finetune_frozen_depthwise
from masterkey.weights import load_checkpoint
from masterkey.workflow import run_rule


def main(smk):
    torch.set_num_threads(max(1, smk.threads))
    demo, seed, settings = smk.params.demo, smk.params.seed, smk.params.finetune
    variant = smk.wildcards.variant
    model, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    if meta.get("name") != "demo":
        raise UserError(
            "finetune_frozen trains on the demo's training regions; it supports the demo model only"
        )
    arrays, index, fits, keys = load_rule_variant_inputs(variant, smk.input)
    summary = apply_variant(model, arrays, index, variant, fits=fits, master_keys=keys, seed=seed)
    dataset = demo_dataset(demo, seed)
    started = time.perf_counter()
    log = finetune_frozen_depthwise(
        model,
        dataset,
        settings["steps"],
        settings["learning_rate"],
        settings["batch_size"],
        seed,
        demo["weight_decay"],
        smk.threads,
    )
    train_seconds = time.perf_counter() - started
    eval_set = demo_split_eval_set(dataset)
    metrics = evaluate(model, eval_set, batch_size=smk.params.batch_size, max_images=smk.params.max_images)
    record = {
        "model": smk.wildcards.model,
        "dataset": eval_set.name,
        "variant": f"finetuned-{variant}",
        **metrics,
        **summary,
        "finetune_steps": settings["steps"],
        "train_seconds": round(train_seconds, 1),
        "final_train_loss": float(log["train_loss"].iloc[-10:].mean()),
    }
    write_json(record, smk.output.result)
    print(record)


run_rule(main, snakemake)
