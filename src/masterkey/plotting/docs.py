"""Small copies of the demo's key figures for the README: `make docs` (see README, "Demo results").

    python -m masterkey.plotting.docs --out docs results/figures/published_models.png ...

Each PNG is written to ``<out>/<same name>``, at most 1100 pixels wide and 150 KB
(:func:`masterkey.plotting.style.shrink_png`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .style import shrink_png

__all__ = ["main"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="+", type=Path, help="PNG figures of a workflow run")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="directory of the copies (docs/)")
    parser.add_argument("--max-width", type=int, default=1100, help="largest width in pixels")
    parser.add_argument("--max-kb", type=int, default=150, help="largest file size in KB")
    args = parser.parse_args(argv)
    for figure in args.figures:
        if not figure.is_file():
            parser.error(f"{figure} does not exist; build it first (snakemake {figure})")
        target = shrink_png(figure, args.out / figure.name, args.max_width, args.max_kb * 1000)
        print(f"{figure} -> {target} ({target.stat().st_size / 1000:.0f} KB)")


if __name__ == "__main__":
    main()
