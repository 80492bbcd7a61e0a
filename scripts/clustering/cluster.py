"""Rule cluster: per kernel size, k-means on latent codes (+ raw baseline) -> assignments,
prototypes, labels, classified shares."""

import pandas as pd

from masterkey.clustering.autoencoder import decode, load_autoencoders
from masterkey.clustering.clusters import (
    classification_caption,
    classification_table,
    cluster_pools,
    save_clustering,
)
from masterkey.clustering.pool import latents_for_pool, pool_models
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table


def main(smk):
    settings, seed = ClusteringSettings.from_section(smk.params.settings), smk.params.seed
    pools = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, seed,
                        held_out=smk.params.held_out)  # fmt: skip
    latents = {key: latents_for_pool(pool, smk.input.latents) for key, pool in pools.items()}
    models, _ = load_autoencoders(smk.input.model, pools)
    decoders = {key: (lambda z, m=models[key]: decode(m, z)) for key in pools}
    results = cluster_pools(pools, latents, settings, seed, decoders)
    save_clustering(results, dict(smk.output.items()))
    table = classification_table(pd.concat([r.assignments for r in results.values()], ignore_index=True))
    caption = classification_caption(settings.threshold)
    write_table(table, *smk.output.table, caption=caption, label="tab:classification")
    print(pd.concat([r.clusters for r in results.values()]).to_string(index=False))
    print(table[table["level"] == "model"].to_string(index=False))


run_rule(main, snakemake)
