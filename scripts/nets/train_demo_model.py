"""Rule train_demo_model: train the embedded demo ConvNeXt -> safetensors + sidecar + training log."""

from masterkey.core.rules import run_rule
from masterkey.data.demo import DemoSettings
from masterkey.data.published import load_master_key_filters
from masterkey.nets.demo import save_demo_model, train_demo_model


def main(smk):
    settings = DemoSettings.from_section(smk.params.demo)
    training = train_demo_model(settings, smk.params.seed, load_master_key_filters(smk.input.published))
    save_demo_model(training, settings, smk.params.seed, smk.output.weights, smk.output.meta,
                    smk.output.training_log)  # fmt: skip
    print(training.report())


run_rule(main, snakemake)
