"""The one figure style of the project, and deterministic saving.

* Sizes are in inches for a paper column (``COLUMN_WIDTH``) or the full text
  width (``TEXT_WIDTH``); fonts are 7-8 pt so figures are readable when
  printed at those widths.
* :func:`save_figure` writes PDF (for papers) and/or PNG (for the report)
  with fixed metadata, so reruns give byte-identical files.
* :func:`shrink_png` makes the small copies of figures shown in the README
  (``docs/*.png``, ``make docs``).
* Kernels are shown with :func:`show_kernel`: ``imshow`` of ``h[row, col]``
  (top row = largest ``y``, docs/methods.md section 1), diverging
  colour map symmetric around 0.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..core.io import atomic_paths  # noqa: E402

__all__ = [
    "COLUMN_WIDTH",
    "TEXT_WIDTH",
    "KERNEL_CMAP",
    "PALETTE",
    "apply_style",
    "save_figure",
    "shrink_png",
    "show_kernel",
]

COLUMN_WIDTH = 3.5
TEXT_WIDTH = 7.2
KERNEL_CMAP = "RdBu_r"
PALETTE = "colorblind"

RC_PARAMS = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.dpi": 150,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,
    "svg.hashsalt": "masterkey",
    "path.simplify": True,
}

# Fixed metadata: no creation dates or software versions, so files are reproducible.
PDF_METADATA = {"Creator": "masterkey", "Producer": "masterkey", "CreationDate": None, "ModDate": None}
PNG_METADATA = {"Software": "masterkey"}


def apply_style() -> None:
    """Set the project's seaborn/matplotlib style (idempotent)."""
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks", palette=PALETTE, rc=RC_PARAMS)


def save_figure(fig, *paths: str | Path) -> None:
    """Save ``fig`` to every path (format from the suffix: .pdf, .png, .svg) atomically, then close it."""
    with atomic_paths(*paths) as temps:
        for temp, final in zip(temps, paths, strict=True):
            suffix = Path(final).suffix.lower()
            metadata = {".pdf": PDF_METADATA, ".png": PNG_METADATA}.get(suffix)
            fig.savefig(temp, format=suffix.lstrip("."), metadata=metadata)
    plt.close(fig)


def shrink_png(
    source: str | Path, target: str | Path, max_width: int = 1100, max_bytes: int = 150_000
) -> Path:
    """Write a smaller copy of the PNG ``source`` to ``target`` (atomically) and return ``target``.

    The image is scaled down (Lanczos) to at most ``max_width`` pixels wide, flattened onto white and
    quantised to an adaptive palette of at most 256 colours (figures use few colours, so this is
    visually lossless); while the file is larger than ``max_bytes`` the width shrinks by 15 %.  No
    metadata is written, so the same figure gives the same bytes.  Raises ``ValueError`` when even a
    300-pixel-wide copy is too large.
    """
    from PIL import Image

    with Image.open(source) as opened:
        image = opened.convert("RGBA")
    flat = Image.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A"))
    width = min(max_width, flat.width)
    while True:
        height = max(1, round(flat.height * width / flat.width))
        small = flat if width == flat.width else flat.resize((width, height), Image.Resampling.LANCZOS)
        palette = small.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        palette.save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes:
            with atomic_paths(target) as (temp,):
                temp.write_bytes(buffer.getvalue())
            return Path(target)
        if width <= 300:
            raise ValueError(f"{source}: no copy of at most {max_bytes} bytes down to 300 pixels wide")
        width = max(300, int(width * 0.85))


def show_kernel(ax, kernel: np.ndarray, vmax: float | None = None, title: str | None = None):
    """Draw one kernel ``h[row, col]`` with a symmetric diverging colour scale; returns the image."""
    kernel = np.asarray(kernel, dtype=float)
    vmax = float(np.nanmax(np.abs(kernel))) if vmax is None else vmax
    image = ax.imshow(kernel, cmap=KERNEL_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.5)
    if title:
        ax.set_title(title, pad=2)
    return image
