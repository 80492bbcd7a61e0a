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
* any other exception is a bug: its traceback goes to the log *and* the terminal; so does an
  interrupt or a ``sys.exit`` with an error status;
* the log receives the output of the whole process, not only of Python's ``print``: messages of C
  extensions and of child processes (the rule's file descriptors 1 and 2 point to the log), and
  a hard crash (segmentation fault, abort) writes its Python traceback there (:mod:`faulthandler`).

Errors before ``run_rule`` starts (while the script imports the library) reach the log through
:mod:`masterkey._rulelog`, installed by ``import masterkey``.  :func:`check_interpreter_path`
refuses, before any job runs, a Python interpreter that Snakemake cannot start scripts with.
"""

from __future__ import annotations

import faulthandler
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TextIO

from .._rulelog import unexpected_error
from .errors import StaleFileError, UserError

__all__ = ["check_interpreter_path", "run_rule", "user_message"]

# Characters that make a path more than one shell word (Snakemake does not quote the interpreter).
_SHELL_UNSAFE = re.compile(r"[^\w@%+=:,./~-]")


def user_message(err: UserError) -> str:
    """The message of ``err`` with the workflow's fix for a stale file appended."""
    if isinstance(err, StaleFileError):
        return f"{err}; rebuild it: `snakemake --forcerun {err.path}` (or delete it and run snakemake again)"
    return str(err)


def check_interpreter_path(executable: str | None = None) -> None:
    """Refuse a Python interpreter path that Snakemake cannot run rule scripts with.

    Snakemake starts every ``script:`` rule (and every cluster job) as ``<python> <script>`` with the
    interpreter path unquoted, so a path with a space (or another character the shell splits on or
    expands) fails every job with "No such file or directory" and an empty log.  The repository
    and working directory may contain spaces; only the interpreter (usually ``.venv/bin/python``
    in the repository) matters.

    Parameters
    ----------
    executable : str, optional
        The interpreter path; default ``sys.executable`` (the Python running Snakemake).

    Raises
    ------
    UserError
        When the path contains such a character; the message names the path and the fix.
    """
    path = sys.executable if executable is None else executable
    bad = sorted(set(_SHELL_UNSAFE.findall(path)))
    if bad:
        shown = ", ".join("a space" if c == " " else repr(c) for c in bad)
        raise UserError(
            f"the Python interpreter {path!r} has {shown} in its path; Snakemake starts every rule "
            "script as `<python> <script>` without quoting it, so every job would fail. Move the "
            "repository (or the virtual environment) to a path without spaces or shell characters, "
            "e.g. `mv 'my repo' my_repo`, then recreate the environment there (`rm -rf .venv && "
            "make venv`: a virtual environment does not survive a move)"
        )


def run_rule(main: Callable, snakemake) -> None:
    """Run ``main(snakemake)`` with all output of the process in the rule's log; exit 1 on any error."""
    log_path = Path(snakemake.log[0]) if len(snakemake.log) else None
    if log_path is None:
        _run(main, snakemake, sys.stderr)
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log, _process_output_to(log) as terminal:
        with redirect_stdout(log), redirect_stderr(log):
            _run(main, snakemake, terminal)


@contextmanager
def _process_output_to(log: TextIO) -> Iterator[TextIO]:
    """File descriptors 1 and 2 (C extensions, child processes) into ``log``; yields the terminal.

    Also dumps a hard crash's traceback into ``log`` (faulthandler) unless a fault handler is
    already set (pytest's, or :mod:`masterkey._rulelog`'s, which writes to the same log).
    """
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    own_faulthandler = not faulthandler.is_enabled()
    try:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        if own_faulthandler:
            faulthandler.enable(file=log, all_threads=True)
        yield terminal
    finally:
        if own_faulthandler:
            faulthandler.disable()
        for stream in (log, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        terminal.close()


def _run(main: Callable, snakemake, terminal: TextIO) -> None:
    rule = snakemake.rule
    started = time.perf_counter()
    # torch reads OMP_NUM_THREADS when it is first imported (some rules import it lazily, e.g. the
    # l1 search of fit_kernels); where it is already imported, set its threads directly
    os.environ["OMP_NUM_THREADS"] = str(max(1, int(snakemake.threads)))
    if "torch" in sys.modules:
        from ..training.runtime import set_threads

        set_threads(snakemake.threads)

    def report(message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        if terminal is not sys.stderr:
            print(message, file=terminal, flush=True)

    try:
        main(snakemake)
    except UserError as err:
        report(f"ERROR in rule {rule}: {user_message(err)}")
        sys.exit(1)
    except BaseException as exc:  # a bug or an interrupt: its traceback goes to the log and the terminal
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            raise
        report(unexpected_error(rule, traceback.format_exc()))
        sys.exit(1)
    print(f"rule {rule} finished in {time.perf_counter() - started:.1f} s")
