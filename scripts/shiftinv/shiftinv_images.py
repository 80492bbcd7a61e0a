"""Rule shiftinv_images: ([C]) grayscale crops for the shift-invariance measures: imagenet_val when
set, else the photographs bundled with installed packages -> npz (images, sources)."""

import numpy as np

from masterkey.core.rules import run_rule
from masterkey.shiftinv.images import imagenet_gray_crops, natural_gray_crops
from masterkey.shiftinv.measures import save_filters


def main(smk):
    p = smk.params
    if p.imagenet_val:
        images, sources = imagenet_gray_crops(p.imagenet_val, p.images, p.size)
    else:
        images, sources = natural_gray_crops(p.images, p.size, p.seed)
    save_filters(smk.output[0], images=images, sources=np.array(sources))
    origin = "imagenet_val" if p.imagenet_val else "bundled photographs"
    print(f"{len(images)} grayscale crops of {p.size}x{p.size} pixels from the {origin}")


run_rule(main, snakemake)
