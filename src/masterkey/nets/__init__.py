"""Networks: checkpoints and weights, the embedded demo network, depthwise extraction and write-back.

* :mod:`.checkpoints` - timm checkpoints (hub or local file) stored as safetensors + JSON sidecar;
* :mod:`.depthwise` - finding depthwise convolutions, extracting their kernels, writing kernels back;
* :mod:`.demo` - the small ConvNeXt trained from scratch offline.

References
----------
Depthwise kernels are extracted as in [A]; the networks are timm's ConvNeXt family.
[A] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. Unveiling the Unseen: Identifiable Clusters
    in Trained Depthwise Convolutional Kernels. ICLR 2024 (arXiv:2401.14469).
"""

from .checkpoints import (
    check_timm_name,
    create_pretrained_model,
    fetch_weights,
    load_checkpoint,
    model_metadata,
    read_metadata,
    save_checkpoint,
)
from .demo import (
    DemoTraining,
    demo_batches,
    depthwise_structure,
    evaluate_demo,
    fit_demo_recipe,
    save_demo_model,
    train_demo_model,
)
from .depthwise import (
    DepthwiseLayer,
    apply_kernels,
    count_depthwise_kernels,
    extract_kernels,
    find_depthwise_convs,
    stage_and_block,
)

__all__ = [
    "check_timm_name",
    "create_pretrained_model",
    "fetch_weights",
    "save_checkpoint",
    "load_checkpoint",
    "model_metadata",
    "read_metadata",
    "DepthwiseLayer",
    "find_depthwise_convs",
    "count_depthwise_kernels",
    "stage_and_block",
    "extract_kernels",
    "apply_kernels",
    "DemoTraining",
    "train_demo_model",
    "evaluate_demo",
    "demo_batches",
    "depthwise_structure",
    "save_demo_model",
    "fit_demo_recipe",
]
