"""Rule train_autoencoder: pooled normalised kernels of every size -> one autoencoder per size
(autoencoder.pt), latents, history, pool counts."""

import pandas as pd

from masterkey.clustering.autoencoder import encode, save_autoencoders, train_autoencoders
from masterkey.clustering.pool import latents_table, pool_models
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table


def main(smk):
    settings, seed = ClusteringSettings.from_section(smk.params.settings), smk.params.seed
    pools = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, seed,
                        held_out=smk.params.held_out)  # fmt: skip
    counts = pd.concat([pool.counts for pool in pools.values()], ignore_index=True)
    print(counts.to_string(index=False))
    models, history = train_autoencoders(pools, settings, seed)
    seconds = history.pop("seconds")  # wall time stays in the log, so reruns give identical files
    extra = {"settings": settings.as_dict(), "seed": seed}
    save_autoencoders(models, smk.output.model, history, extra=extra)
    latents = [latents_table(pool, encode(models[key], pool.kernels)) for key, pool in pools.items()]
    write_parquet(pd.concat(latents, ignore_index=True), smk.output.latents)
    write_table(history, smk.output.history)
    write_table(counts, smk.output.pool)
    print(f"{seconds.sum():.1f} s of training in all; {len(pools)} kernel size(s) encoded")


run_rule(main, snakemake)
