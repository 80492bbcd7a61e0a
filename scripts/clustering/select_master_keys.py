"""Rule select_master_keys: decoded candidates -> greedy selection of K master keys, error curve, table."""

from masterkey.clustering.autoencoder import load_autoencoder
from masterkey.clustering.master_keys import (
    compare_with_published,
    comparison_caption,
    decode_candidates,
    select_master_keys,
)
from masterkey.clustering.pool import pool_models
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.io import write_npy
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.data.published import load_master_key_filters


def main(smk):
    settings, num_keys = ClusteringSettings.from_section(smk.params.settings), int(smk.wildcards.num_keys)
    pool = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, smk.params.seed,
                       capped=False)  # fmt: skip
    model, _ = load_autoencoder(smk.input.model)
    latents, candidates = decode_candidates(model, settings.num_candidates)
    result = select_master_keys(pool.kernels, candidates, num_keys, latents)
    comparison = compare_with_published(
        result.keys, load_master_key_filters(smk.input.published), result.latents
    )
    write_npy(result.keys.astype("float32"), smk.output.master_keys)
    write_table(result.selection.curve, smk.output.curve)
    caption = comparison_caption(num_keys)
    write_table(comparison, *smk.output.table, caption=caption, label=f"tab:master-keys-{num_keys}")
    print(result.selection.curve.to_string(index=False))
    print(comparison.to_string(index=False))


run_rule(main, snakemake)
