"""Rule train_autoencoder: pooled normalised kernels of all models -> autoencoder.pt, latents, history."""

from masterkey.clustering.autoencoder import encode, save_autoencoder, train_autoencoder
from masterkey.clustering.pool import latents_table, pool_models
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table


def main(smk):
    settings, seed = ClusteringSettings.from_section(smk.params.settings), smk.params.seed
    pool = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, seed)
    print(pool.counts.to_string(index=False))
    model, history = train_autoencoder(pool.kernels[pool.fit_mask], settings, seed)
    seconds = history.pop("seconds")  # wall time stays in the log, so reruns give identical files
    save_autoencoder(model, smk.output.model, history, extra={"settings": settings.as_dict(), "seed": seed})
    write_parquet(latents_table(pool, encode(model, pool.kernels)), smk.output.latents)
    write_table(history, smk.output.history)
    write_table(pool.counts, smk.output.pool)
    chosen = history[history["selected"]]
    print(
        f"kept restart {chosen['restart'].iloc[0]} of {history['restart'].nunique()}: loss "
        f"{chosen['final_loss'].iloc[0]:.4f} after {len(chosen)} epochs "
        f"({seconds.sum():.1f} s in all); {len(pool):,} kernels encoded"
    )


run_rule(main, snakemake)
