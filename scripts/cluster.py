"""Rule cluster: k-means on latent codes (+ raw baseline) -> assignments, prototypes, labels, shares."""

import numpy as np
import pandas as pd
import torch

from masterkey.autoencoder import decode, load_autoencoder
from masterkey.clustering import (
    ClusteringSettings,
    classification_table,
    cluster_pool,
    latents_for_pool,
    pool_models,
)
from masterkey.io import atomic_paths
from masterkey.tables import write_table
from masterkey.workflow import run_rule


def main(smk):
    torch.set_num_threads(max(1, smk.threads))
    settings = ClusteringSettings.from_config(smk.params.settings)
    seed = smk.params.seed
    pool = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, seed)
    latents = latents_for_pool(pool, pd.read_parquet(smk.input.latents))
    model, _ = load_autoencoder(smk.input.model)
    result = cluster_pool(pool, latents, settings, seed, decode=lambda z: decode(model, z))
    with atomic_paths(
        smk.output.assignments, smk.output.prototypes, smk.output.decoded, smk.output.raw_prototypes
    ) as temps:
        result.assignments.to_parquet(temps[0], index=False)
        for temp, array in zip(
            temps[1:], (result.prototypes, result.decoded, result.raw_prototypes), strict=True
        ):
            with open(temp, "wb") as handle:
                np.save(handle, array.astype(np.float32))
    write_table(result.clusters, smk.output.clusters)
    write_table(result.raw_clusters, smk.output.raw_clusters)
    table = classification_table(result.assignments)
    write_table(
        table,
        smk.output.table_csv,
        smk.output.table_md,
        smk.output.table_tex,
        caption=f"Share of depthwise kernels classified (cosine to their cluster prototype >= "
        f"{settings.threshold}) per model, stage and layer",
        label="tab:classification",
    )
    print(result.clusters.to_string(index=False))
    print(table[table["level"] == "model"].to_string(index=False))


run_rule(main, snakemake)
