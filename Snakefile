# masterkey: what depthwise-separable CNNs learn in their depthwise filters.
# Default config = the embedded offline demo; full reproduction:
#   snakemake --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.20")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/kernels.smk"
include: "workflow/rules/scalespace.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/replacement.smk"


rule all:
    input:
        all_targets(),
    default_target: True
