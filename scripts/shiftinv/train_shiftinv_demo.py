"""Rule train_shiftinv_demo: ([C]) a timm architecture trained on the embedded demo crops with the
demo network's recipe, budget and seed -> checkpoint + training log (its first layer is analysed)."""

from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.data.published import load_master_key_filters
from masterkey.nets.demo import save_demo_model
from masterkey.shiftinv.networks import train_demo_network
from masterkey.shiftinv.settings import ShiftinvRun


def main(smk):
    run = ShiftinvRun.from_section(smk.params.run)
    training, settings = train_demo_network(
        run, DemoSettings.from_section(smk.params.demo), smk.params.seed,
        load_master_key_filters(smk.input.published),
    )  # fmt: skip
    out = smk.output
    save_demo_model(training, settings, smk.params.seed, out.weights, out.meta, out.metrics, name=run.name)
    print(f"{run.name}: {training.report()}")


run_rule(main, snakemake)
