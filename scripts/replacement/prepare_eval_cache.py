"""Rule prepare_eval_cache: decode the ImageNet validation images once per preprocessing setting."""

from masterkey.core.rules import run_rule
from masterkey.data.evalcache import build_eval_cache
from masterkey.data.imagenet import find_imagenet_images
from masterkey.data.preprocessing import Preprocessing


def main(smk):
    preprocessing = Preprocessing.from_dict(smk.params.preprocessing)
    paths, labels = find_imagenet_images(smk.params.root)
    print(f"{len(paths):,} images in {smk.params.root}; preprocessing {preprocessing.as_dict()}")
    build_eval_cache(
        paths, labels, preprocessing, smk.output.images, workers=smk.threads, meta={"dataset": "imagenet_val"}
    )


run_rule(main, snakemake)
