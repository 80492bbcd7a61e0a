# masterkey: what depthwise-separable CNNs learn in their depthwise filters.
# Default config = the embedded offline demo; full reproduction:
#   snakemake --configfile config/paper.yaml
# One rule file per stage (workflow/rules/<stage>.smk), one script per rule
# (scripts/<stage>/<rule>.py), one library package per stage (src/masterkey/<stage>/).
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from masterkey.core.errors import UserError
from masterkey.core.rules import check_interpreter_path

min_version("9.20")

try:  # first: a Python that Snakemake cannot start rule scripts with would fail every job
    check_interpreter_path()
except UserError as err:
    raise WorkflowError(str(err)) from None


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/nets.smk"
include: "workflow/rules/scalespace.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/replacement.smk"
include: "workflow/rules/niff.smk"
include: "workflow/rules/shiftinv.smk"


rule all:
    default_target: True
    input:
        all_targets(),
