"""Rule select_master_keys: per kernel size, decoded candidates -> greedy selection of K master keys;
error curves; the keys of the published filters' size (7x7) compared with them."""

from masterkey.clustering.autoencoder import load_autoencoders
from masterkey.clustering.master_keys import (
    comparison_caption,
    curves_table,
    keys_table,
    published_comparison,
    save_master_keys,
    select_master_keys_per_size,
)
from masterkey.clustering.pool import pool_models
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.data.published import load_master_key_filters


def main(smk):
    settings, num_keys = ClusteringSettings.from_section(smk.params.settings), int(smk.wildcards.num_keys)
    pools = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, smk.params.seed,
                        capped=False, held_out=smk.params.held_out)  # fmt: skip
    models, _ = load_autoencoders(smk.input.model, pools)
    results = select_master_keys_per_size(pools, models, settings, num_keys)
    comparison, note = published_comparison(results, load_master_key_filters(smk.input.published))
    save_master_keys({key: result.keys for key, result in results.items()}, smk.output.master_keys)
    keys = keys_table(results)
    write_table(keys, smk.output.key_table)
    write_table(curves_table(results), smk.output.curve)
    caption = comparison_caption(num_keys, comparison, note)
    write_table(comparison, *smk.output.table, caption=caption, label=f"tab:master-keys-{num_keys}")
    print(keys.to_string(index=False), comparison.to_string(index=False), note or "", sep="\n")


run_rule(main, snakemake)
