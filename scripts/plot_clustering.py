"""Figure rules of the clustering stage (one script, dispatched on the rule name; logic in the library)."""

import numpy as np
import pandas as pd

from masterkey.plotting import clustering_figures as figures
from masterkey.workflow import run_rule


def main(smk):
    out = list(smk.output)
    if smk.rule == "plot_cluster_prototypes":
        clusters = pd.read_csv(smk.input.clusters)
        figures.plot_prototypes(np.load(smk.input.prototypes), clusters, np.load(smk.input.decoded), *out)
    elif smk.rule == "plot_cluster_membership":
        assignments = pd.read_parquet(smk.input.assignments)
        figures.plot_cluster_membership(
            assignments, pd.read_csv(smk.input.clusters), smk.wildcards.model, *out
        )
    elif smk.rule == "plot_latent_histograms":
        assignments = pd.read_parquet(smk.input.assignments)
        figures.plot_latent_histograms(assignments, pd.read_csv(smk.input.clusters), *out)
    elif smk.rule == "plot_master_keys":
        comparison = pd.read_csv(smk.input.comparison)
        latents = comparison[["latent_0"]].to_numpy()
        figures.plot_master_keys(np.load(smk.input.master_keys), comparison, *out, latents=latents)
    elif smk.rule == "plot_master_key_error_curve":
        figures.plot_error_curve(pd.read_csv(smk.input.curve), int(smk.wildcards.num_keys), *out)
    else:
        raise ValueError(f"plot_clustering.py does not know rule {smk.rule}")


run_rule(main, snakemake)
