"""Command line: ``python -m conformance certify [TARGET ...]``.

Certifies one or more decoders, prints a readable summary (a line per check, failures
in full, the verdict, the seed and the command that replays the run) and writes a
JSON report (schema: ``docs/report-schema.md``) and, on request, a Markdown
certificate for a pull request::

    python -m conformance certify                        # the bundled default decoder
    python -m conformance certify pkg.mod:spec --profile quick
    python -m conformance certify a.mod:spec b.mod:specs --report out/cert.json
    python -m conformance certify pkg.mod:spec --markdown out/certificate.md
    python -m conformance certify pkg.mod:spec --check chunked_decode_matches_full_decode --seed 42
    python -m conformance certify pkg.mod:spec --check cache_isolation   # a category
    python -m conformance certify --installed            # every registered decoder
    python -m conformance --list-checks                  # every check and its promise
    python -m conformance explain chunked_decode_matches_full_decode

The report goes to ``conformance-report.json`` in the current directory unless
``--report PATH`` names another file (parent folders are created) or ``--no-report``
turns it off. Several targets give one report with every decoder in it.

``--installed`` adds every decoder registered under the entry-point group
``flashdreams.conformance.decoders`` (see :mod:`conformance.core.installed`). A registered
decoder that cannot be loaded is reported as unloadable and the others still run.

Report paths are checked before anything runs: a path that cannot be written (a folder,
``/proc/...``, a read-only or missing folder) is a usage error. Missing folders are
created only with ``--create-dirs``. Before the first check, each report file is
replaced with a placeholder saying the run has not finished, so a killed run never
leaves an older report claiming certification in its place.

This module parses arguments, prints, and maps the run's outcome to an exit status
(:mod:`conformance.core.exit_codes`, also in ``--help``); the run itself is the engine's
(:func:`conformance.engine.loop.certify_targets`), the files the reports' (:mod:`conformance.reports.outputs`).
Ctrl-C, SIGTERM and SIGHUP stop the run the same way: the workers are stopped, the
report is written marked partial, and the exit status says which (130, 143).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from conformance.checks.catalog import CHECK_IDS, checks_of, require_known
from conformance.checks.registry import plain_text
from conformance.core.exit_codes import EXIT_CERTIFIED, EXIT_CODES, EXIT_NOT_CERTIFIED, EXIT_USAGE
from conformance.core.installed import no_decoders_registered_message, registered_decoders
from conformance.core.links import DOCS_BASE_VARIABLE, check_docs, docs_base
from conformance.core.profiles import PROFILES
from conformance.core.suggest import did_you_mean
from conformance.core.version import KIT_VERSION
from conformance.engine.loop import RunOutcome, Terminated, certify_targets, exit_code
from conformance.engine.plan import RunOptions
from conformance.frontends.progress import LiveProgress
from conformance.reports import github
from conformance.reports.outputs import OutputPaths, check_paths, claim_paths, write_outputs
from conformance.reports.record import DEFAULT_REPORT_PATH
from conformance.reports.text import closing_lines

__all__ = ["DEFAULT_TARGET", "argument_problems", "build_parser", "main", "output_paths", "selected_checks", "target_hint"]


def silence_startup_warnings() -> None:
    """Keep third-party start-up noise out of the kit's output.

    torch built against NumPy warns "Failed to initialize NumPy" when NumPy is missing or
    of another ABI; the kit never uses NumPy, so the warning says nothing to its users.
    Installed before torch is imported (a worker process imports it; this one never does).
    """
    warnings.filterwarnings("ignore", message=r".*Failed to initialize NumPy", category=UserWarning)


silence_startup_warnings()

#: The decoder ``python -m conformance certify`` certifies when given no target: the
#: bundled Wan 2.1 VAE decoder (full size in bfloat16 on CUDA when a GPU is present, a
#: small configuration in float32 on the CPU otherwise).
DEFAULT_TARGET = "reference_decoders.wan.specs:default"


def default_target() -> str:
    """The decoder ``certify`` checks when given no target."""
    return DEFAULT_TARGET


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            message += self._suggest_options(message.split(":", 1)[1].split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _suggest_options(self, unknown: list[str]) -> str:
        """Did-you-mean for mistyped options (``--chek``), from every subcommand's options."""
        known = [s for action in self._actions for s in action.option_strings]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    known += [s for a in sub._actions for s in a.option_strings]
        known = list(dict.fromkeys(known))
        hints = [
            f"{word}{hint}" for word in unknown if word.startswith("--")
            and (hint := did_you_mean(word.split("=", 1)[0], known, limit=1))
        ]
        return f" ({' '.join(hints).replace('; did', ': did')})" if hints else ""


class _Once(argparse.Action):
    """Store an option's value, refusing the option a second time (the last would win silently)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        seen: set[str] = getattr(namespace, "_given", set())
        if self.dest in seen:
            parser.error(f"{option_string} given twice; give it once")
        namespace._given = seen | {self.dest}
        setattr(namespace, self.dest, values)


class _OnceFlag(_Once):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", False)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        super().__call__(parser, namespace, True, option_string)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {number}")
    return number


def _profile_name(value: str) -> str:
    if value in PROFILES:
        return value
    raise argparse.ArgumentTypeError(
        f"unknown profile {value!r}{did_you_mean(value, list(PROFILES))} "
        f"(choose one of: {', '.join(PROFILES)})"
    )


def _exit_codes_text() -> str:
    lines = ["exit status:"]
    for code, meaning in EXIT_CODES.items():
        lines += textwrap.wrap(meaning, width=78, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m conformance",
        description="Conformance kit for streaming video decoders (StreamingVideoDecoder).",
        epilog=_exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {KIT_VERSION} (flashdreams-conformance)"
    )
    parser.add_argument(
        "--list-checks", action="store_true",
        help="list the check ids under their categories, with the promise each guards, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    certify = commands.add_parser(
        "certify",
        help="run every conformance check on decoders and report",
        description="Run the conformance checks on each TARGET, print a summary, write a "
        "JSON report (and on request a Markdown certificate).",
        epilog=_exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    certify.add_argument(  # also after the command: `certify --version` is what people type
        "--version", action="version", version=f"python -m conformance {KIT_VERSION} (flashdreams-conformance)"
    )
    certify.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="MODULE:ATTR naming a DecoderSpec, a list of them, or a zero-argument callable "
        f"returning either (default: {default_target()})",
    )
    certify.add_argument(
        "--report",
        action=_Once,
        metavar="PATH",
        default=None,
        help="where to write the JSON report (default: ./conformance-report.json); its "
        "folder must exist (or pass --create-dirs)",
    )
    certify.add_argument(
        "--no-report", action=_OnceFlag, help="do not write a JSON report"
    )
    certify.add_argument(
        "--markdown",
        action=_Once,
        metavar="PATH",
        default=None,
        help="also write a Markdown certificate (for a pull request) to PATH",
    )
    certify.add_argument(
        "--create-dirs",
        action=_OnceFlag,
        help="create missing folders of --report and --markdown paths (never done otherwise)",
    )
    certify.add_argument(
        "--installed",
        action=_OnceFlag,
        help="also certify every decoder that installed packages register under the "
        "entry-point group flashdreams.conformance.decoders",
    )
    certify.add_argument(
        "--profile",
        action=_Once,
        type=_profile_name,
        metavar="PROFILE",
        default="default",
        help=f"Hypothesis profile: how many examples each check tries, one of {', '.join(PROFILES)} "
        "(default: default)",
    )
    certify.add_argument(
        "--seed",
        action=_Once,
        type=int,
        default=None,
        metavar="N",
        help="Hypothesis seed (default: a fresh random seed, printed); the same seed and "
        "profile replay the same examples",
    )
    certify.add_argument(
        "--check",
        action="append",
        dest="checks",
        default=None,
        metavar="ID",
        help="run only this check, or every check of this category (repeatable); see "
        "--list-checks. A run of some checks reports them but never certifies",
    )
    certify.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="torch intra-op threads in each worker process (default: 1 for decoders on the "
        "CPU, which keeps small CPU decoders fast on loaded machines; torch's default for GPU "
        "decoders)",
    )
    certify.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes that run one decoder's checks at once (default: one per core "
        "for CPU decoders, up to 4; 2 for GPU decoders). Results are the same for any N",
    )
    certify.add_argument(
        "--max-crashes",
        type=_non_negative_int,
        default=2,
        metavar="N",
        help="after N checks whose worker process crashed or hung, report a decoder's other "
        "checks as not run (the decoder is not certified either way); 0: never stop (default: 2)",
    )
    certify.add_argument(
        "--maxfail",
        type=_positive_int,
        default=None,
        metavar="N",
        help="after N failed checks, report a decoder's other checks as not run (default: run all)",
    )
    certify.add_argument(
        "--in-process",
        action="store_true",
        help="run the checks in this process instead of supervised worker processes (for "
        "debugging a decoder under pdb; a decoder that exits, crashes or hangs its process "
        "then takes the run down with it)",
    )
    chatter = certify.add_mutually_exclusive_group()
    chatter.add_argument("-q", "--quiet", action="store_true", help="print only the verdicts")
    chatter.add_argument(
        "-v", "--verbose", action="store_true",
        help="also say when targets load and when a worker process is replaced",
    )
    certify.add_argument(
        "--list-checks",
        dest="list_certify_checks",
        action=_OnceFlag,
        help="list the check ids with the promise each guards, and exit (as python -m conformance --list-checks)",
    )
    certify.set_defaults(handler=_certify_command)
    explain = commands.add_parser(
        "explain",
        help="explain a check: its promise, why it matters, the typical bug and what it does",
        description="Print what a check promises and how it checks it (works offline, from "
        "the installed kit).",
    )
    explain.add_argument("check", metavar="CHECK", help="a check id (see --list-checks)")
    explain.set_defaults(handler=_explain_command)
    return parser


def argument_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with parsed ``certify`` arguments that argparse cannot see: unknown
    check ids or categories (with the closest known ones), a check given twice,
    contradictory options. Each problem is one line; the caller prints them and exits 2
    before anything runs."""
    problems: list[str] = []
    if args.no_report and args.report:
        problems.append("--report and --no-report contradict each other; give one of them")
    if args.no_report and args.create_dirs and not args.markdown:
        problems.append("--create-dirs has nothing to create with --no-report and no --markdown")
    seen: set[str] = set()
    for selector in args.checks or []:
        if selector in seen:
            problems.append(f"--check {selector} given twice; give each check once")
            continue
        seen.add(selector)
        try:
            checks_of(selector)
        except KeyError as err:
            problems.append(f"--check: {err.args[0]} (python -m conformance --list-checks lists them)")
    return problems


def selected_checks(args: argparse.Namespace) -> list[str] | None:
    """The check ids ``--check`` selects (ids and categories), in the catalog's order;
    ``None`` for every check."""
    if not args.checks:
        return None
    chosen = {check_id for selector in args.checks for check_id in checks_of(selector)}
    return [check_id for check_id in CHECK_IDS if check_id in chosen]


def output_paths(args: argparse.Namespace) -> OutputPaths:
    """The output files ``certify``'s arguments ask for (``--report``/``--no-report``/``--markdown``)."""
    report = None if args.no_report else Path(args.report or DEFAULT_REPORT_PATH)
    return OutputPaths(report=report, markdown=Path(args.markdown) if args.markdown else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m conformance``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.list_checks or getattr(args, "list_certify_checks", False):
            _print_checks(sys.stdout)
            return EXIT_CERTIFIED
        if args.command is None:
            parser.print_usage(sys.stderr)
            return _usage_error("give a command (certify, explain) or --list-checks; see --help")
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly instead of a traceback, and keep
        # Python from failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        listing = args.list_checks or getattr(args, "list_certify_checks", False)
        return EXIT_NOT_CERTIFIED if args.command == "certify" and not listing else EXIT_CERTIFIED


_IN_PROCESS_RUNS: list[bool] = []


def decoders_ran_in_this_process() -> bool:
    """True once ``certify --in-process`` has run decoder code in this process."""
    return bool(_IN_PROCESS_RUNS)


def _certify_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Check arguments and outputs, resolve targets, certify with live progress, report, exit.

    Every target is loaded and judged in a supervised worker process (``--in-process``
    opts out, for debugging a decoder under pdb): the exit code and the report come from
    the results this process received, whatever the decoder did to its own process.
    """
    out = out or sys.stdout
    problems = argument_problems(args)
    if problems:
        return _usage_error("\n".join(problems))
    paths = output_paths(args)
    problem = check_paths(paths, create_dirs=args.create_dirs)  # before loading: fails in a second
    if problem:
        return _usage_error(problem)
    targets = list(dict.fromkeys(args.targets))
    if not targets and not args.installed:
        targets = [default_target()]
    required = list(targets)
    origins: dict[str, tuple[str, str | None]] = {}
    if args.installed:
        entries = registered_decoders()
        if not entries:
            return _usage_error(f"--installed: {no_decoders_registered_message()}")
        print(f"Installed decoders ({len(entries)} registered): " + ", ".join(e.label for e in entries), file=out)
        for entry in entries:
            if entry.target not in targets:  # named on the command line too: certify it once
                targets.append(entry.target)
                origins[entry.target] = (entry.name, entry.distribution)
    target_problems = [problem for target in targets if (problem := target_hint(target))]
    if target_problems:
        return _usage_error("\n".join(target_problems))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    check_ids = selected_checks(args)

    # Claim the output paths first: from here on, a run that dies or is refused leaves a
    # report saying so, never an older one claiming certification.
    claimed = claim_paths(paths, targets=targets)
    if claimed:
        return _usage_error(claimed)
    progress = LiveProgress(out, quiet=args.quiet, verbose=args.verbose, profile=args.profile)
    print(
        f"Certifying {', '.join(targets)}: profile {args.profile}, seed {seed}"
        + (" (in-process, unsupervised)" if args.in_process else ""),
        file=out, flush=True,
    )
    if args.in_process:
        _IN_PROCESS_RUNS.append(True)
    options = RunOptions(
        seed=seed, profile=args.profile, check_ids=check_ids, supervised=not args.in_process,
        threads=args.threads, jobs=args.jobs, max_worker_losses=args.max_crashes or None,
        maxfail=args.maxfail,
    )
    with _signals_stop_the_run():
        outcome = certify_targets(targets, options, required=required, origins=origins, on_event=progress)
    progress.clear()
    if outcome.refused:
        write_outputs([], paths, unloadable=outcome.unloadable,
                      note="the run was refused before any check ran: " + " ".join(outcome.refused))
        return _usage_error("\n".join(outcome.refused))
    print(file=out)
    if outcome.interrupted:
        how = f"Stopped by {outcome.stopped_by}" if outcome.stopped_by else "Interrupted (Ctrl-C)"
        print(f"{how}: the workers were stopped; unfinished checks are reported as not run, and the "
              "report is partial.", file=out)
    for line in closing_lines(
        outcome.runs, seed=seed, profile=args.profile, targets=targets, check_ids=check_ids or (),
        unloadable=outcome.unloadable, interrupted=outcome.interrupted,
    ):
        print(line, file=out)
    write_problems = _write_reports(outcome, paths, out=out)
    return exit_code(outcome, write_problems=write_problems)


def _write_reports(outcome: RunOutcome, paths: OutputPaths, *, out: TextIO) -> list[str]:
    """Write every report the arguments ask for, say where, print the GitHub Actions
    annotations when running there; the problems (also printed), so that a missing
    report refuses exit 0."""
    written, problems = write_outputs(
        outcome.runs, paths, unloadable=outcome.unloadable,
        run_state="interrupted" if outcome.interrupted else "finished",
    )
    for label, path in written:
        if label != "Job summary":
            print(f"{label}: {path}", file=out)
    if github.in_actions(os.environ):
        for line in github.annotation_lines(outcome.runs, unloadable=outcome.unloadable):
            print(line, file=out)
    for problem in problems:
        print(f"python -m conformance: error: {problem}", file=sys.stderr)
    out.flush()
    return problems


def target_hint(target: str) -> str | None:
    """A hint for a target that is written as a file path instead of ``MODULE:ATTR``."""
    module = target.split(":", 1)[0]
    if module.endswith(".py") or "/" in module or "\\" in module:
        dotted = module.removesuffix(".py").strip("./").replace("/", ".").replace("\\", ".")
        attr = target.split(":", 1)[1] if ":" in target else "ATTR"
        return (
            f"target {target!r} names a file; a target is a dotted module path and an "
            f"attribute, MODULE:ATTR (here perhaps {dotted}:{attr}), importable from the "
            "current directory or an installed package"
        )
    return None


@contextlib.contextmanager
def _signals_stop_the_run() -> Iterator[None]:
    """While the run lasts, SIGTERM and SIGHUP (a CI runner cancelling the job, ``timeout``,
    a closed terminal) stop it as Ctrl-C does: a :class:`Terminated` in the main thread."""
    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signal.Signals(signum).name)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            try:
                previous[number] = signal.signal(number, stop)
            except ValueError:  # not the main thread: leave the signals alone
                pass
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _explain_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``explain CHECK``: the check's whole docstring, its category and its docs page."""
    out = out or sys.stdout
    try:
        check_id = require_known(args.check)
    except KeyError as err:
        return _usage_error(f"{err.args[0]} (python -m conformance --list-checks lists them)")
    # Imported only here: the checks' docstrings live with their functions (torch).
    from conformance.checks.suite import get_check

    check = get_check(check_id)
    print(f"{check.id} ({check.category})", file=out)
    print("", file=out)
    print(plain_text(check.doc), file=out)
    print("", file=out)
    where = "" if docs_base() else (
        f" in the kit's source repository (set {DOCS_BASE_VARIABLE} to where the pages are published)"
    )
    print(f"page: {check_docs(check.id)}{where}", file=out)
    return EXIT_CERTIFIED


def _print_checks(out: TextIO) -> None:
    """Each check id under its category, with the first sentence of its promise as plain text."""
    # Imported only here: the promises are the check functions' docstrings (torch).
    from conformance.checks.suite import ALL_CHECKS

    width = max(len(check.id) for check in ALL_CHECKS)
    category = None
    for check in ALL_CHECKS:
        if check.category != category:
            category = check.category
            print(f"{category}:", file=out)
        print(f"  {check.id:<{width}}  {check.promise}", file=out)
    out.flush()


def _usage_error(message: str) -> int:
    print(f"python -m conformance: error: {message}", file=sys.stderr)
    return EXIT_USAGE
