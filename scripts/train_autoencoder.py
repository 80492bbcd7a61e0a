"""Rule train_autoencoder: pooled normalised kernels of all models -> autoencoder.pt, latents, history."""

import torch

from masterkey.autoencoder import encode, save_autoencoder, train_autoencoder
from masterkey.clustering import ClusteringSettings, pool_models
from masterkey.io import atomic_paths
from masterkey.tables import write_table
from masterkey.workflow import run_rule


def main(smk):
    torch.set_num_threads(max(1, smk.threads))
    settings = ClusteringSettings.from_config(smk.params.settings)
    seed = smk.params.seed
    pool = pool_models(smk.params.models, smk.input.kernels, smk.input.indices, settings, seed)
    print(pool.counts.to_string(index=False))
    fit = pool.kernels[pool.fit_mask]
    model, history = train_autoencoder(
        fit,
        latent_dim=settings.latent_dim,
        hidden_widths=settings.hidden_widths,
        epochs=settings.epochs_for(len(fit)),
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        restarts=settings.restarts,
        seed=seed,
    )
    latents = encode(model, pool.kernels)
    table = pool.index.copy()
    for column in range(latents.shape[1]):
        table[f"latent_{column}"] = latents[:, column]
    seconds = history.pop("seconds")  # wall time stays in the log, so reruns give identical files
    save_autoencoder(model, smk.output.model, history, extra={"settings": settings.as_dict(), "seed": seed})
    with atomic_paths(smk.output.latents) as (temp,):
        table.to_parquet(temp, index=False)
    write_table(history, smk.output.history)
    write_table(pool.counts, smk.output.pool)
    chosen = history[history["selected"]]
    print(
        f"kept restart {chosen['restart'].iloc[0]} of {history['restart'].nunique()}: loss "
        f"{chosen['final_loss'].iloc[0]:.4f} after {len(chosen)} epochs "
        f"({seconds.sum():.1f} s in all); {len(pool):,} kernels encoded"
    )


run_rule(main, snakemake)
