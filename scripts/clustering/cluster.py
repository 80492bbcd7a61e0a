"""Rule cluster: k-means on latent codes (+ raw baseline) -> assignments, prototypes, labels, shares."""

from masterkey.clustering.autoencoder import decode, load_autoencoder
from masterkey.clustering.clusters import (
    classification_caption,
    classification_table,
    cluster_pool,
    save_clustering,
)
from masterkey.clustering.pool import latents_for_pool, pool_models
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table


def main(smk):
    settings, seed = ClusteringSettings.from_section(smk.params.settings), smk.params.seed
    pool = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, seed)
    latents = latents_for_pool(pool, smk.input.latents)
    model, _ = load_autoencoder(smk.input.model)
    result = cluster_pool(pool, latents, settings, seed, decode=lambda z: decode(model, z))
    save_clustering(result, dict(smk.output.items()))
    table = classification_table(result.assignments)
    caption = classification_caption(settings.threshold)
    write_table(table, *smk.output.table, caption=caption, label="tab:classification")
    print(result.clusters.to_string(index=False))
    print(table[table["level"] == "model"].to_string(index=False))


run_rule(main, snakemake)
