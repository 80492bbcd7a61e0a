"""Replacing learned depthwise kernels by idealized or master key filters, and evaluating the networks.

* :mod:`.variants` - the variant registry (names, grammar, inputs);
* :mod:`.build` - the kernels of every variant;
* :mod:`.evaluation` - writing a variant into a network and evaluating it (accuracy and fidelity);
* :mod:`.frozen` - frozen depthwise filters: key assignment and freezing ([Q]);
* :mod:`.finetune` - training with frozen depthwise filters: [B]'s fine-tuning, [Q]'s from scratch;
* :mod:`.tables` - the replacement tables;
* :mod:`.settings` - the ``replacement`` config section.

References
----------
Method: docs/methods.md section 5 ([B] Section 5).
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
"""

from .build import VariantInputs, build_variant
from .evaluation import (
    DATASETS,
    apply_variant,
    best_idealized_method,
    evaluate_stages,
    evaluate_variant,
    load_eval_set,
    load_reference_logits,
    load_variant_inputs,
    reference_logits,
)
from .finetune import finetune_frozen_task, frozen_keys_task
from .settings import FinetuneSettings, FrozenKeysSettings, ReplacementSettings
from .tables import (
    read_replacement_table,
    read_stages_table,
    replacement_table,
    stages_table,
)
from .variants import (
    Variant,
    default_variants,
    finetuned_name,
    idealized_name,
    parse_variant,
    register_variant,
    variant_input_paths,
    variant_needs,
    variant_pattern,
)

__all__ = [
    "Variant",
    "parse_variant",
    "variant_pattern",
    "variant_needs",
    "default_variants",
    "register_variant",
    "VariantInputs",
    "build_variant",
    "load_variant_inputs",
    "load_eval_set",
    "DATASETS",
    "reference_logits",
    "load_reference_logits",
    "apply_variant",
    "evaluate_variant",
    "evaluate_stages",
    "best_idealized_method",
    "finetune_frozen_task",
    "frozen_keys_task",
    "replacement_table",
    "stages_table",
    "read_replacement_table",
    "read_stages_table",
    "ReplacementSettings",
    "FinetuneSettings",
    "FrozenKeysSettings",
    "variant_input_paths",
    "idealized_name",
    "finetuned_name",
]
