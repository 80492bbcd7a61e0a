"""Rule figure_explained_share: share of a model's kernels explained by their idealized model (+ table)."""

from masterkey.core.io import read_parquet
from masterkey.core.rules import run_rule
from masterkey.core.tables import write_table
from masterkey.plotting.scalespace import plot_explained_share
from masterkey.plotting.style import save_figure
from masterkey.scalespace.models import explained_share, explained_share_caption


def main(smk):
    model = smk.wildcards.model
    share = explained_share(read_parquet(smk.input.fits))
    caption = explained_share_caption(model)
    write_table(share, *smk.output.tables, caption=caption, label=f"tab:explained-share-{model}")
    save_figure(plot_explained_share(share, model), smk.output.png, smk.output.pdf)


run_rule(main, snakemake)
