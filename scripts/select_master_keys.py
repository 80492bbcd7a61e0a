"""Rule select_master_keys: decoded candidates -> greedy selection of K master keys, error curve, table."""

import numpy as np
import torch

from masterkey.autoencoder import load_autoencoder
from masterkey.clustering import ClusteringSettings, pool_models
from masterkey.io import atomic_paths
from masterkey.master_keys import compare_with_published, decode_candidates, select_master_keys
from masterkey.published import load_master_key_filters
from masterkey.tables import write_table
from masterkey.workflow import run_rule


def main(smk):
    torch.set_num_threads(max(1, smk.threads))
    settings = ClusteringSettings.from_config(smk.params.settings)
    num_keys = int(smk.wildcards.num_keys)
    pool = pool_models(
        smk.params.models, smk.input.kernels, smk.input.indices, settings, smk.params.seed, capped=False
    )
    model, _ = load_autoencoder(smk.input.model)
    latents, candidates = decode_candidates(model, settings.num_candidates)
    result = select_master_keys(pool.kernels, candidates, num_keys, latents)
    published = load_master_key_filters(smk.input.published)
    comparison = compare_with_published(result.keys, published)
    comparison.insert(1, "latent_0", result.latents[:, 0])
    with atomic_paths(smk.output.master_keys) as (temp,):
        with open(temp, "wb") as handle:
            np.save(handle, result.keys.astype(np.float32))
    write_table(result.selection.curve, smk.output.curve)
    write_table(
        comparison,
        smk.output.table_csv,
        smk.output.table_md,
        smk.output.table_tex,
        caption=f"The {num_keys} selected master key filters and their closest published filter (|cosine|)",
        label=f"tab:master-keys-{num_keys}",
    )
    print(result.selection.curve.to_string(index=False))
    print(comparison.to_string(index=False))


run_rule(main, snakemake)
