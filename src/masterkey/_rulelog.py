"""The rule's log for errors of a Snakemake script before :func:`masterkey.core.rules.run_rule` runs.

A rule script (``scripts/<stage>/<rule>.py``) imports the library first and calls
``run_rule(main, snakemake)`` last; an error *while importing* (an ImportError, a library whose
import crashes) would reach only the terminal and leave the rule's log empty.  Importing
:mod:`masterkey` therefore calls :func:`install` first thing: where ``__main__`` is a script run by
Snakemake's ``script:`` directive (a global ``snakemake`` object of class ``Snakemake`` with a
``log``), any uncaught exception is also appended to the rule's first log file, in the format of
:func:`run_rule`, and a hard crash (segmentation fault, abort) dumps the Python traceback there
(:mod:`faulthandler`).  Anywhere else (tests, notebooks, the Snakefile itself) it does nothing.

Standard library only: this module runs before the rest of the package is imported.
"""

from __future__ import annotations

import faulthandler
import sys
import traceback
from pathlib import Path

__all__ = ["install", "unexpected_error"]


def unexpected_error(rule: str, details: str) -> str:
    """The report of an unexpected error (a bug) of rule ``rule``; ``details`` is its traceback."""
    return f"ERROR in rule {rule} (unexpected, please report):\n{details}"


def _script_rule() -> tuple[str, Path] | None:
    """(rule name, log path) of the Snakemake script running as ``__main__``, else None."""
    smk = getattr(sys.modules.get("__main__"), "snakemake", None)
    if type(smk).__name__ != "Snakemake" or not getattr(smk, "log", None):
        return None
    return str(smk.rule), Path(smk.log[0])


def install() -> bool:
    """Send uncaught exceptions and fatal signals of a Snakemake rule script to the rule's log.

    Returns True where installed (``__main__`` is a Snakemake script with a log), else False.
    Idempotent; the terminal still gets the traceback as usual.
    """
    found = _script_rule()
    if found is None or getattr(sys.excepthook, "_masterkey_log", None) is not None:
        return False
    rule, log = found
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as stream:
                stream.write(unexpected_error(rule, "".join(traceback.format_exception(exc_type, exc, tb))))
        except OSError:  # the log cannot be written: the terminal has the traceback
            pass

    excepthook._masterkey_log = log
    sys.excepthook = excepthook
    if not faulthandler.is_enabled():
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            # faulthandler writes to the file's descriptor: keep it open for the life of the process
            faulthandler.enable(file=open(log, "a"), all_threads=True)  # noqa: SIM115
        except OSError:
            pass
    return True
