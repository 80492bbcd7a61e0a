"""The grayscale images of the shift-invariance measurements ([C]; docs/methods.md section 8).

Each image is a centre crop of ``image_size + 2 * context`` pixels: the measures use outputs
whose input positions lie in the central ``image_size`` x ``image_size`` part, the ``context``
around it lets the filters and the translations see real pixels instead of a border.  Grayscale
is PIL's ITU-R 601-2 luma (``convert("L")``), scaled to ``[0, 1]``.

* :func:`natural_gray_crops`: the photographs bundled with installed packages (the replacement
  fidelity set, :mod:`masterkey.data.natural`): whole photographs first, then seeded random crops;
* :func:`imagenet_gray_crops`: ``count`` images of an ImageNet validation folder, evenly spaced
  in its sorted file list (resize of the shorter side, centre crop: the usual evaluation view).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import UserError
from ..data.imagenet import find_imagenet_images
from ..data.natural import NATURAL_PHOTOS, crop_boxes, load_photo

__all__ = ["centre_gray", "natural_gray_crops", "imagenet_gray_crops"]


def centre_gray(image, size: int) -> np.ndarray:
    """A PIL image resized (bicubic, shorter side ``size``), centre-cropped to ``size`` x ``size``
    and converted to grayscale: float32 ``(size, size)`` in ``[0, 1]``."""
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    resized = image.convert("L").resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC
    )
    left, top = (resized.size[0] - size) // 2, (resized.size[1] - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0


def _check(count: int, size: int) -> None:
    if int(count) < 1 or int(size) < 16:
        raise ValueError(f"need at least one image of at least 16 pixels, got {count} of {size}")


def natural_gray_crops(count: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``count`` grayscale crops ``(count, size, size)`` float32 of the bundled photographs and
    their sources (``photo[box]``); the boxes of :func:`masterkey.data.natural.crop_boxes`."""
    _check(count, size)
    photos = [load_photo(photo) for photo in NATURAL_PHOTOS]
    images, sources = np.empty((int(count), size, size), np.float32), []
    for i, photo, box in crop_boxes([p.size for p in photos], int(count), seed):
        images[i] = centre_gray(photos[photo].crop(box), size)
        sources.append(f"{NATURAL_PHOTOS[photo].name}{list(box)}")
    return images, sources


def imagenet_gray_crops(root, count: int, size: int) -> tuple[np.ndarray, list[str]]:
    """``count`` grayscale centre crops ``(count, size, size)`` float32 of the ImageNet validation
    folder ``root`` (any layout :func:`~masterkey.data.imagenet.find_imagenet_images` reads),
    evenly spaced in its sorted list, and their file names.  ``ConfigError`` (key
    ``imagenet_val``) for a bad folder, ``UserError`` for an unreadable image."""
    from PIL import Image

    _check(count, size)
    paths, _ = find_imagenet_images(root)
    if len(paths) < count:
        raise UserError(f"imagenet_val: {root} holds {len(paths)} images; shiftinv.images asks for {count}")
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, int(count)).round().astype(int)]
    images = np.empty((int(count), size, size), np.float32)
    for i, path in enumerate(chosen):
        try:
            with Image.open(path) as image:
                images[i] = centre_gray(image, size)
        except OSError as err:
            raise UserError(f"imagenet_val: cannot read {path} ({err}); replace or remove the file") from None
    return images, [p.name for p in chosen]
