"""Rule niff_kernels: ([D]) a NIFF run's spatial kernels, trained and at initialisation, at the
feature-map sizes it trained at -> kernels npz + long kernel-mass-ratio table (with the plain
baseline's depthwise kernels)."""

from masterkey.core.io import write_parquet
from masterkey.core.rules import run_rule
from masterkey.kernels.store import load_index, load_kernels
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.niff.analysis import analyse_run, plain_kmr_frame, save_state_kernels


def main(smk):
    trained, meta = load_checkpoint(smk.input.weights, smk.input.meta)
    initial, _ = load_checkpoint(smk.input.init_weights, smk.input.init_meta)
    plain = None
    if "baseline_kernels" in smk.input.keys():
        index = load_index(smk.input.baseline_index)
        plain = plain_kmr_frame(load_kernels(smk.input.baseline_kernels), index, state="plain")
    kernels, frame = analyse_run(trained, initial, meta["input_size"], plain)
    save_state_kernels(kernels, smk.output.kernels)
    write_parquet(frame, smk.output.kmr)
    sizes = {layer: "x".join(map(str, k.shape[-2:])) for layer, k in kernels["trained"].items()}
    print(f"{smk.wildcards.run}: {len(sizes)} NIFF layers, maps {sorted(set(sizes.values()), key=len)}")


run_rule(main, snakemake)
