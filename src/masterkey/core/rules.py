"""Glue between Snakemake ``script:`` rules and the library (the workflow boundary).

:func:`run_rule` is the only place where a rule's environment is set up and its errors are
reported:

* stdout and stderr (tqdm progress included) go to the rule's log file;
* torch's intra-op threads are the rule's ``threads`` (:func:`masterkey.training.runtime.set_threads`
  when torch is already imported, ``OMP_NUM_THREADS`` for a later import); the only override is the
  autoencoder's documented one-thread block (:mod:`masterkey.clustering.autoencoder`);
* a :class:`~masterkey.core.errors.UserError` ends the rule with one line on the terminal and in
  the log, exit status 1, no traceback; a :class:`~masterkey.core.errors.StaleFileError` gets the
  hint how to rebuild the file;
* any other exception is a bug: its traceback goes to the log *and* the terminal.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from .errors import StaleFileError, UserError

__all__ = ["run_rule", "user_message"]


def user_message(err: UserError) -> str:
    """The message of ``err`` with the workflow's fix for a stale file appended."""
    if isinstance(err, StaleFileError):
        return f"{err}; rebuild it: `snakemake --forcerun {err.path}` (or delete it and run snakemake again)"
    return str(err)


def run_rule(main: Callable, snakemake) -> None:
    """Run ``main(snakemake)`` with stdout/stderr in the rule's log; exit 1 on any error."""
    log_path = Path(snakemake.log[0]) if len(snakemake.log) else None
    if log_path is None:
        _run(main, snakemake)
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        _run(main, snakemake)


def _report(message: str) -> None:
    print(message, file=sys.stderr)
    if sys.stderr is not sys.__stderr__:
        print(message, file=sys.__stderr__)


def _run(main: Callable, snakemake) -> None:
    rule = snakemake.rule
    started = time.perf_counter()
    # torch reads OMP_NUM_THREADS when it is first imported (some rules import it lazily, e.g. the
    # l1 search of fit_kernels); where it is already imported, set its threads directly
    os.environ["OMP_NUM_THREADS"] = str(max(1, int(snakemake.threads)))
    if "torch" in sys.modules:
        from ..training.runtime import set_threads

        set_threads(snakemake.threads)
    try:
        main(snakemake)
    except UserError as err:
        _report(f"ERROR in rule {rule}: {user_message(err)}")
        sys.exit(1)
    except Exception:  # a bug: keep the traceback in the log, not only on the terminal
        _report(f"ERROR in rule {rule} (unexpected, please report):\n{traceback.format_exc()}")
        sys.exit(1)
    print(f"rule {rule} finished in {time.perf_counter() - started:.1f} s")
