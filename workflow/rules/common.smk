# Shared by every stage: config validation, the model table, paths and helpers. No rules here
# (`snakemake --lint` wants functions and rules in separate files); each stage file
# workflow/rules/<stage>.smk has its own preamble, its <STAGE>_TARGETS and its rules.
import re

from snakemake.exceptions import WorkflowError

from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.config import model_specs, validate_config
from masterkey.data.demo import DemoSettings
from masterkey.nets.demo import demo_recipe
from masterkey.replacement.finetune import frozen_keys_name
from masterkey.core.errors import ConfigError, UserError
from masterkey.nets.checkpoints import check_model_spec
from masterkey.nets.sources import weights_input
from masterkey.nets.niff_convnext import is_niff_architecture, plain_architecture
from masterkey.niff.settings import NiffSettings
from masterkey.shiftinv.settings import ShiftinvSettings


def config_error(err):
    """A UserError raised while the DAG is built, as Snakemake's one-line workflow error."""
    return WorkflowError(f"config error: {err}")


try:
    validate_config(config)
    MODELS = {spec.name: spec for spec in model_specs(config)}
    NIFF = NiffSettings.from_config(config)  # nets (trained runs), niff
    NIFF_RUNS = {run.name: run for run in NIFF.run_list(MODELS)}
    for _spec in MODELS.values():
        if not _spec.is_demo and _spec.name not in NIFF_RUNS:
            check_model_spec(_spec)
    SHIFTINV = ShiftinvSettings.from_config(config)  # nets (runs, fetched networks), shiftinv
    SHIFTINV_RUNS = {run.name: run for run in SHIFTINV.run_list([*MODELS, *NIFF_RUNS])}
    # networks of shiftinv.networks that are neither models nor runs: timm checkpoints to fetch
    FETCHED_NETWORKS = {
        spec.name: spec for spec in SHIFTINV.fetched_networks([*MODELS, *NIFF_RUNS], SHIFTINV_RUNS)
    }
    for _spec in FETCHED_NETWORKS.values():
        try:
            check_model_spec(_spec)
        except UserError as err:
            raise ConfigError("shiftinv.networks", str(err).removeprefix("config key models: ")) from None
except UserError as err:
    raise config_error(err) from None

# Settings of the config sections that several stages read (the others: in their stage's file).
DEMO = DemoSettings.from_config(config)  # nets, replacement, resources.smk
CLUSTERING = ClusteringSettings.from_config(config)  # clustering, replacement (number of master keys)
TIMM_MODELS = [name for name, spec in MODELS.items() if not spec.is_demo and name not in NIFF_RUNS]
DEMO_MODELS = [name for name, spec in MODELS.items() if spec.is_demo]
# models trained by the workflow in the niff stage (their kernels go through spread, fits, clustering)
RUN_MODELS = [name for name in MODELS if name in NIFF_RUNS]
PUBLISHED_FILTERS = "resources/published/master_key_filters_8.txt"
TABLE_EXTS = ("csv", "md", "tex")  # every table is written in these formats
FIGURE_EXTS = ("png", "pdf")  # every figure likewise


def alternatives(names):
    """Regex matching exactly one of ``names`` (matches nothing for an empty list)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


# -- training jobs of the replacement stage (rules finetune_frozen, train_frozen_keys); the names they
# use (RUN, DEMO, FINETUNE, FROZEN_KEYS_K, IMAGENET_TRAIN, EVAL_CACHE_INPUT) are set in replacement.smk.
def training_params(model, recipe):
    """Params of a training job: the recipe, the runtime (the demo's crops load in the main
    process), the data and the seed."""
    run = RUN.as_dict() | ({"workers": 0} if model in DEMO_MODELS else {})
    return {
        "recipe": recipe,
        "run": run,
        "demo": DEMO.as_dict(),
        "imagenet_train": IMAGENET_TRAIN,
        "seed": config["seed"],
    }


def finetune_recipe(model):
    """The demo's recipe with replacement.finetune's length, rate and batch (warm-up 10 %), or
    replacement.finetune.recipe for timm models."""
    if model not in DEMO_MODELS:
        return FINETUNE.recipe
    steps = FINETUNE.steps
    return demo_recipe(DEMO, steps=steps, learning_rate=FINETUNE.learning_rate, batch_size=FINETUNE.batch_size,
                       warmup_steps=max(1, steps // 10), eval_every=max(1, steps // 4)).as_dict()  # fmt: skip


def frozen_inputs(wildcards):
    """The reference kernels and the keys a [Q] run needs."""
    keys = frozen_keys_of(wildcards.run)
    inputs = {
        "kernels": f"results/kernels/{wildcards.model}.npz",
        "index": f"results/kernels/{wildcards.model}.parquet",
    }
    if keys == "published":
        inputs["published"] = PUBLISHED_FILTERS
    elif keys == "own":
        inputs["master_keys"] = f"results/clustering/master_keys_{FROZEN_KEYS_K}.npz"
    return inputs if keys != "learned" else {}


def frozen_keys_of(run):
    return {frozen_keys_name(k, FROZEN_KEYS_K): k for k in ("learned", "published", "own", "random")}[run]


def training_eval_cache(wildcards):
    """The ImageNet validation cache a timm model is evaluated on while it trains (an input)."""
    if wildcards.model in DEMO_MODELS or not IMAGENET_VAL:
        return {}
    return EVAL_CACHE_INPUT[wildcards.model]


def finetuned_reference(wildcards):
    """The unmodified network's reference logits a fine-tuned one is compared with, where the two
    heads are comparable (the demo's, or a timm ImageNet-1k head)."""
    if wildcards.model in DEMO_MODELS or CLASSES[wildcards.model] == IMAGENET_1K_CLASSES:
        return {"reference": REFERENCE.format(**wildcards)}
    return {}


# -- the niff stage's input functions (NIFF_RUNS is set above, NIFF_ANALYSED in niff.smk)
def niff_baseline(wildcards):
    """The plain baseline's kernels of a run (none without a baseline)."""
    baseline = NIFF_RUNS[wildcards.run].baseline
    if not baseline:
        return {}
    return {
        "baseline_kernels": f"results/kernels/{baseline}.npz",
        "baseline_index": f"results/kernels/{baseline}.parquet",
    }


def niff_accuracy_runs():
    """Params of table_niff_accuracy: every trained run with its baseline's sidecar."""
    return [
        {
            "run": name,
            "architecture": NIFF_RUNS[name].architecture,
            "dataset": NIFF_RUNS[name].dataset,
            "meta": f"resources/weights/{name}.json",
            "baseline": NIFF_RUNS[name].baseline,
            "baseline_meta": (
                f"resources/weights/{NIFF_RUNS[name].baseline}.json" if NIFF_RUNS[name].baseline else None
            ),
        }
        for name in NIFF_ANALYSED
    ]


def niff_eval_cache(wildcards):
    """The ImageNet validation cache an ImageNet run is evaluated on while it trains."""
    run = NIFF_RUNS[wildcards.run]
    if run.dataset != "imagenet":
        return {}
    key = preprocessing_for_model(plain_architecture(run.architecture)).key()
    return {"eval_cache": f"{EVAL_CACHE}/imagenet_val_{key}.npy"}


def all_targets():
    """Everything the default target builds: the targets of every stage."""
    return (
        NETS_TARGETS
        + SCALESPACE_TARGETS
        + CLUSTERING_TARGETS
        + REPLACEMENT_TARGETS
        + NIFF_TARGETS
        + SHIFTINV_TARGETS
    )


wildcard_constraints:
    model=alternatives([*MODELS, *NIFF_RUNS, *SHIFTINV_RUNS, *FETCHED_NETWORKS]),
