"""Rule table_share_vs_accuracy: classified share per model and kernel size beside published top-1."""

import pandas as pd

from masterkey.clustering.accuracy import accuracy_trend, chance_share, share_caption, share_vs_accuracy
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.kernels.store import load_kernels
from masterkey.nets.checkpoints import read_metadata


def main(smk):
    settings, seed = ClusteringSettings.from_section(smk.params.settings), smk.params.seed
    classification = pd.read_csv(smk.input.classification)
    models = {
        name: {"architecture": read_metadata(meta)["architecture"], "published_top1": top1}
        for (name, top1), meta in zip(smk.params.published_top1.items(), smk.input.meta, strict=True)
    }
    chance = {
        size: chance_share(prototypes, settings.threshold, seed=seed, flip_sign=settings.flip_sign)
        for size, prototypes in load_kernels(smk.input.prototypes).items()
    }
    table = share_vs_accuracy(classification, models, chance)
    trend = accuracy_trend(table)
    caption = share_caption(settings.threshold, trend)
    write_table(table, *smk.output.table, caption=caption, label="tab:share-vs-accuracy")
    print(table.to_string(index=False))
    print(trend.to_string(index=False))


run_rule(main, snakemake)
