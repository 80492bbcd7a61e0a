"""Networks: checkpoints and weights, the embedded demo network, depthwise extraction and write-back.

* :mod:`.checkpoints` - checkpoints (hub, local file or package) stored as safetensors + JSON sidecar;
* :mod:`.hub` - timm names, building networks, downloads through timm's hub mechanism;
* :mod:`.sources` - where weights come from: a local file or ``package:<import name>``;
* :mod:`.layouts` - reading checkpoint files: wrappers, dtypes, key layouts, one clear error;
* :mod:`.deploy` - fusing reparameterisable networks (RepViT, MobileOne, FastViT) for analysis;
* :mod:`.depthwise` - finding depthwise convolutions, extracting their kernels, writing kernels back;
* :mod:`.demo` - the small ConvNeXt trained from scratch offline;
* :mod:`.niff`, :mod:`.niff_convnext` - the NIFF depthwise layer of [D] and ``niff_<ConvNeXt>``
  for timm (the study: :mod:`masterkey.niff`).

References
----------
Depthwise kernels are extracted as in [A]; the networks are timm's ConvNeXt family.
[A] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. Unveiling the Unseen: Identifiable Clusters
    in Trained Depthwise Convolutional Kernels. ICLR 2024 (arXiv:2401.14469).
"""

from . import niff_convnext as _niff_convnext  # noqa: F401  (registers the niff_* architectures with timm)
from .checkpoints import (
    check_model_spec,
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
    create_demo_network,
    demo_recipe,
    depthwise_structure,
    evaluate_demo,
    save_demo_model,
    train_demo_model,
    train_on_demo,
)
from .deploy import deploy_form, is_reparameterizable
from .depthwise import (
    DepthwiseLayer,
    apply_kernels,
    count_depthwise_kernels,
    extract_kernels,
    find_depthwise_convs,
    stage_and_block,
)
from .layouts import load_weights_file
from .sources import resolve_weights, weights_input

__all__ = [
    "check_timm_name",
    "check_model_spec",
    "resolve_weights",
    "weights_input",
    "load_weights_file",
    "deploy_form",
    "is_reparameterizable",
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
    "create_demo_network",
    "demo_recipe",
    "depthwise_structure",
    "save_demo_model",
    "train_on_demo",
]
