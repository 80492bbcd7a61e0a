"""Rule fetch_weights: a timm checkpoint (hub download or local file) -> safetensors + sidecar."""

from masterkey.core.config import ModelSpec
from masterkey.core.rules import run_rule
from masterkey.nets.checkpoints import fetch_weights


def main(smk):
    spec = ModelSpec(name=smk.wildcards.model, weights=smk.params.local_weights)
    meta = fetch_weights(spec, smk.output.weights, smk.output.meta, hub_cache=smk.params.hub_cache)
    print(
        f"{meta['name']}: {meta['num_parameters']:,} parameters, {meta['num_depthwise_kernels']:,} depthwise "
        f"kernels, licence {meta['licence']}, sha256 {meta['sha256'][:12]}"
    )


run_rule(main, snakemake)
