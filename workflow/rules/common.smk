# Shared by every stage: config validation, the model table, paths and helpers. No rules here
# (`snakemake --lint` wants functions and rules in separate files); each stage file
# workflow/rules/<stage>.smk has its own preamble, its <STAGE>_TARGETS and its rules.
import re

from snakemake.exceptions import WorkflowError

from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.config import model_specs, validate_config
from masterkey.data.demo import DemoSettings
from masterkey.core.errors import UserError
from masterkey.nets.checkpoints import check_model_spec
from masterkey.nets.sources import weights_input


def config_error(err):
    """A UserError raised while the DAG is built, as Snakemake's one-line workflow error."""
    return WorkflowError(f"config error: {err}")


try:
    validate_config(config)
    MODELS = {spec.name: spec for spec in model_specs(config)}
    for _spec in MODELS.values():
        if not _spec.is_demo:
            check_model_spec(_spec)
except UserError as err:
    raise config_error(err) from None

# Settings of the config sections that several stages read (the others: in their stage's file).
DEMO = DemoSettings.from_config(config)  # nets, replacement, resources.smk
CLUSTERING = ClusteringSettings.from_config(config)  # clustering, replacement (number of master keys)
TIMM_MODELS = [name for name, spec in MODELS.items() if not spec.is_demo]
DEMO_MODELS = [name for name, spec in MODELS.items() if spec.is_demo]
PUBLISHED_FILTERS = "resources/published/master_key_filters_8.txt"
TABLE_EXTS = ("csv", "md", "tex")  # every table is written in these formats
FIGURE_EXTS = ("png", "pdf")  # every figure likewise


def alternatives(names):
    """Regex matching exactly one of ``names`` (matches nothing for an empty list)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def all_targets():
    """Everything the default target builds: the targets of every stage."""
    return NETS_TARGETS + SCALESPACE_TARGETS + CLUSTERING_TARGETS + REPLACEMENT_TARGETS


wildcard_constraints:
    model=alternatives(MODELS),
