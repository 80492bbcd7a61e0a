"""Glue between Snakemake ``script:`` rules and the library.

:func:`run_rule` sends a rule's output (including tqdm progress) to its log
file and turns a :class:`~masterkey.errors.UserError` into one clear line on
the terminal and in the log, with exit status 1 and no traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from .errors import UserError


def run_rule(main: Callable, snakemake) -> None:
    """Run ``main(snakemake)`` with stdout/stderr in the rule's log; exit 1 on a :class:`UserError`."""
    log_path = Path(snakemake.log[0]) if len(snakemake.log) else None
    if log_path is None:
        _run(main, snakemake, snakemake.rule)
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        _run(main, snakemake, snakemake.rule)


def _run(main: Callable, snakemake, rule: str) -> None:
    started = time.perf_counter()
    try:
        main(snakemake)
    except UserError as err:
        message = f"ERROR in rule {rule}: {err}"
        print(message, file=sys.stderr)
        if sys.stderr is not sys.__stderr__:
            print(message, file=sys.__stderr__)
        sys.exit(1)
    print(f"rule {rule} finished in {time.perf_counter() - started:.1f} s")
