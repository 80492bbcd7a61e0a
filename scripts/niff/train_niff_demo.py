"""Rule train_niff_demo: ([D]) a run on the embedded demo data, with the demo network's recipe,
budget and seed -> trained and initial checkpoints + training log."""

from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.data.published import load_master_key_filters
from masterkey.nets.demo import save_demo_model
from masterkey.niff.settings import NiffRun, NiffSettings
from masterkey.niff.training import save_initial, train_demo_run


def main(smk):
    run = NiffRun.from_section(smk.params.run)
    training, initial, settings = train_demo_run(
        run, NiffSettings.from_section(smk.params.niff), DemoSettings.from_section(smk.params.demo),
        smk.params.seed, load_master_key_filters(smk.input.published),
    )  # fmt: skip
    out = smk.output
    meta = save_demo_model(
        training, settings, smk.params.seed, out.weights, out.meta, out.metrics, name=run.name
    )
    save_initial(initial, meta, out.init_weights, out.init_meta)
    print(f"{run.name}: {training.report()}")


run_rule(main, snakemake)
