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
    python -m conformance certify --installed            # every registered decoder
    python -m conformance certify --list-checks

The report goes to ``conformance-report.json`` in the current directory unless
``--report PATH`` names another file (parent folders are created) or ``--no-report``
turns it off. Several targets give one report with every decoder in it.

``--installed`` adds every decoder registered under the entry-point group
``flashdreams.conformance.decoders`` (see :mod:`conformance.core.discovery`). A registered
decoder that cannot be loaded is reported as unloadable and the others still run.

Report paths are checked before anything runs: a path that cannot be written (a folder,
``/proc/...``, a read-only or missing folder) is a usage error. Missing folders are
created only with ``--create-dirs``. Before the first check, each report file is
replaced with a placeholder saying the run has not finished, so a killed run never
leaves an older report claiming certification in its place.

Exit status (also in ``--help``; see :data:`EXIT_CODES`):

- 0: every decoder is certified (a complete run: no ``--check`` subset, not interrupted).
- 1: not certified: a check failed, or the run was a ``--check`` subset.
- 2: usage error, unloadable target or invalid spec, or a precondition failed before any
  check ran (unwritable report path, device not available, repeated or contradictory
  options); with ``--installed``, nothing registered or a registered decoder unloadable.
- 3: internal error of the kit (a check ended with status ``error``).
- 4: inconclusive: a check ran out of time without evidence of a fault (a slow or
  loaded machine); nothing failed, nothing is certified.
- 130: interrupted (Ctrl-C); the partial report says so and certifies nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TextIO

__all__ = [
    "EXIT_CERTIFIED",
    "EXIT_CODES",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_CERTIFIED",
    "EXIT_USAGE",
    "argument_problems",
    "build_parser",
    "main",
    "plain_text",
    "precondition_problems",
    "silence_startup_warnings",
]

from conformance.engine import (  # noqa: E402 - one home for the exit codes
    EXIT_CERTIFIED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_CERTIFIED,
    EXIT_USAGE,
)

#: Every exit status of ``certify`` and what it means (printed by ``--help``).
EXIT_CODES: dict[int, str] = {
    EXIT_CERTIFIED: "certified: every decoder passed a complete run",
    EXIT_NOT_CERTIFIED: "not certified: a check failed, or only a --check subset ran",
    EXIT_USAGE: "usage error, unloadable target or invalid spec, or a precondition failed "
    "before any check ran (report path not writable, device not available)",
    EXIT_INTERNAL: "internal error of the conformance kit (please report it)",
    EXIT_INCONCLUSIVE: "inconclusive: a check ran out of time without evidence of a fault "
    "(slow or loaded machine); nothing certified",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); the partial report certifies nothing",
}


def silence_startup_warnings() -> None:
    """Keep third-party start-up noise out of the kit's output.

    torch built against NumPy warns "Failed to initialize NumPy" when NumPy is missing or
    of another ABI; the kit never uses NumPy, so the warning says nothing to its users.
    Installed before torch is imported (this module imports it lazily).
    """
    warnings.filterwarnings("ignore", message=r".*Failed to initialize NumPy", category=UserWarning)


silence_startup_warnings()

_FALLBACK_DEFAULT_TARGET = "reference_decoders.toy:toy_spec"


def default_target() -> str:
    """The decoder ``certify`` checks when given no target (``conformance.DEFAULT_TARGET``)."""
    import conformance

    return str(getattr(conformance, "DEFAULT_TARGET", _FALLBACK_DEFAULT_TARGET))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            message += self._suggest_options(message.split(":", 1)[1].split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _suggest_options(self, unknown: list[str]) -> str:
        """Did-you-mean for mistyped options (``--chek``), from every subcommand's options."""
        from conformance.frontends.suggest import did_you_mean

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


def _did_you_mean(value: str, known: Sequence[str]) -> str:
    from conformance.frontends.suggest import did_you_mean

    return did_you_mean(value, known)


def _profile_name(value: str) -> str:
    from conformance.core.profiles import PROFILES

    if value in PROFILES:
        return value
    raise argparse.ArgumentTypeError(
        f"unknown profile {value!r}{_did_you_mean(value, list(PROFILES))} "
        f"(choose one of: {', '.join(PROFILES)})"
    )


def _exit_codes_text() -> str:
    import textwrap

    lines = ["exit status:"]
    for code, meaning in EXIT_CODES.items():
        lines += textwrap.wrap(meaning, width=78, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
    return "\n".join(lines)


def _kit_version() -> str:
    from conformance.reports.record import kit_version

    return kit_version()


def build_parser() -> argparse.ArgumentParser:
    from conformance.core.profiles import PROFILES

    parser = _Parser(
        prog="python -m conformance",
        description="Conformance kit for streaming video decoders (StreamingVideoDecoder).",
        epilog=_exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_kit_version()} (flashdreams-conformance)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    certify = commands.add_parser(
        "certify",
        help="run every conformance check on decoders and report",
        description="Run the conformance checks on each TARGET, print a summary, write a "
        "JSON report (and on request a Markdown certificate).",
        epilog=_exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    certify.add_argument(  # also after the command: `certify --version` is what people type
        "--version", action="version", version=f"python -m conformance {_kit_version()} (flashdreams-conformance)"
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
        help="run only this check (repeatable); see --list-checks. A run of some checks "
        "reports them but never certifies",
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
        action=_OnceFlag,
        help="list the check ids with the promise each guards, and exit",
    )
    certify.set_defaults(handler=_certify_command)
    return parser


def argument_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with parsed ``certify`` arguments that argparse cannot see: unknown
    check ids (with the closest known ones), a check given twice, contradictory options.
    Each problem is one line; the caller prints them and exits 2 before anything runs."""
    problems: list[str] = []
    if args.no_report and args.report:
        problems.append("--report and --no-report contradict each other; give one of them")
    if args.no_report and args.create_dirs and not args.markdown:
        problems.append("--create-dirs has nothing to create with --no-report and no --markdown")
    if args.checks:
        from conformance.checks import CHECK_IDS

        seen: set[str] = set()
        for check_id in args.checks:
            if check_id in seen:
                problems.append(f"--check {check_id} given twice; give each check once")
                continue
            seen.add(check_id)
            if check_id not in CHECK_IDS:
                problems.append(
                    f"unknown --check {check_id!r}{_did_you_mean(check_id, list(CHECK_IDS))} "
                    "(python -m conformance certify --list-checks lists them)"
                )
    return problems


def precondition_problems(spec_fields: Mapping[str, Any], env: Mapping[str, Any]) -> list[str]:
    """Why a decoder cannot be certified where its checks would run, before any check runs.

    ``spec_fields`` is the spec as plain values (``conformance.reports.record.spec_fields``,
    or what a worker reports in its hello message); ``env`` is the environment the checks
    run in (``conformance.engine.runner.environment``: ``cuda_available``, optionally
    ``cuda_device_count`` and ``mps_available``). Returns one message per problem (the run
    loop prints them and exits 2): today, a device the machine does not have.
    """
    problems: list[str] = []
    name = spec_fields.get("name", "?")
    device = str(spec_fields.get("device") or "cpu")
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not env.get("cuda_available", False):
            problems.append(
                f"decoder {name!r} is declared on device {device!r} but CUDA is not available here "
                f"(torch {env.get('torch', '?')}, cuda {env.get('cuda') or 'not built in'}); run on a "
                "machine with a GPU, or certify a spec on device 'cpu'"
            )
        elif index.isdigit() and isinstance(env.get("cuda_device_count"), int) and int(index) >= env["cuda_device_count"]:
            problems.append(
                f"decoder {name!r} is declared on device {device!r} but this machine has "
                f"{env['cuda_device_count']} CUDA device(s) (cuda:0 to cuda:{env['cuda_device_count'] - 1})"
            )
    elif kind == "mps" and "mps_available" in env and not env["mps_available"]:
        problems.append(f"decoder {name!r} is declared on device 'mps' but MPS is not available here")
    elif kind == "meta":
        problems.append(
            f"decoder {name!r} is declared on device 'meta', which holds no data: the checks "
            "compare real outputs; declare a real device"
        )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m conformance``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "certify" and not args.list_checks:
        from conformance.reports.outputs import check_outputs

        problems = argument_problems(args)
        if problems:
            return _usage_error("\n".join(problems))
        problem = check_outputs(args)  # before loading anything: a bad path fails in a second
        if problem:
            return _usage_error(problem)
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly instead of a traceback, and keep
        # Python from failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CERTIFIED if args.command == "certify" and args.list_checks else EXIT_NOT_CERTIFIED


_IN_PROCESS_RUNS: list[bool] = []


def decoders_ran_in_this_process() -> bool:
    """True once ``certify --in-process`` has run decoder code in this process."""
    return bool(_IN_PROCESS_RUNS)


def _certify_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Load, check preconditions, certify with live progress, report, exit (see the module doc).

    Every target is loaded and judged in a supervised worker process (``--in-process``
    opts out, for debugging a decoder under pdb): the exit code and the report come from
    the results this process received, whatever the decoder did to its own process.
    """
    from conformance.engine import certify_targets, exit_code
    from conformance.frontends.progress import LiveProgress
    from conformance.reports import claim_outputs, write_reports
    from conformance.reports.text import closing_lines

    out = out or sys.stdout
    if args.list_checks:
        _print_checks(out)
        return EXIT_CERTIFIED

    check_ids: list[str] | None = list(args.checks) if args.checks else None
    targets = list(dict.fromkeys(args.targets))
    if not targets and not args.installed:
        targets = [default_target()]
    required = list(targets)
    origins: dict[str, tuple[str, str | None]] = {}
    if args.installed:
        from conformance.core.discovery import no_decoders_registered_message, registered_decoders

        entries = registered_decoders()
        if not entries:
            return _usage_error(f"--installed: {no_decoders_registered_message()}")
        print(
            f"Installed decoders ({len(entries)} registered): "
            + ", ".join(entry.label for entry in entries),
            file=out,
        )
        for entry in entries:
            if entry.target not in targets:  # named on the command line too: certify it once
                targets.append(entry.target)
                origins[entry.target] = (entry.name, entry.distribution)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)

    def preflight(described: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[str]:
        return [p for _, fields, env in described for p in precondition_problems(fields, env)]

    # Claim the output paths first: from here on, a run that dies or is refused leaves a
    # report saying so, never an older one claiming certification.
    claimed = claim_outputs(args, targets=targets)
    if claimed:
        return _usage_error(claimed)

    progress = LiveProgress(
        out, quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False),
        profile=args.profile,
    )
    print(
        f"Certifying {', '.join(targets)}: profile {args.profile}, seed {seed}"
        + ("" if not getattr(args, "in_process", False) else " (in-process, unsupervised)"),
        file=out, flush=True,
    )
    if getattr(args, "in_process", False):
        _IN_PROCESS_RUNS.append(True)
    outcome = certify_targets(
        targets, profile=args.profile, seed=seed, check_ids=check_ids,
        threads=getattr(args, "threads", None), supervised=not getattr(args, "in_process", False),
        origins=origins, required=required, preflight=preflight, on_event=progress,
    )
    progress.clear()
    if outcome.refused:
        with open(os.devnull, "w") as quiet:
            write_reports([], args, unloadable=outcome.unloadable, out=quiet,
                          note="the run was refused before any check ran: " + " ".join(outcome.refused))
        return _usage_error("\n".join(outcome.refused))
    print(file=out)
    if outcome.interrupted:
        print("Interrupted (Ctrl-C): the workers were stopped; unfinished checks are reported "
              "as not run, and the report is partial.", file=out)
    for line in closing_lines(
        outcome.runs, seed=seed, profile=args.profile, targets=targets, check_ids=check_ids or (),
        unloadable=outcome.unloadable, interrupted=outcome.interrupted,
    ):
        print(line, file=out)
    write_problems = write_reports(
        outcome.runs, args, unloadable=outcome.unloadable, interrupted=outcome.interrupted, out=out
    )
    return exit_code(outcome, write_problems=write_problems)


def _print_checks(out: TextIO) -> None:
    """Each check id under its category, with the first sentence of its promise as plain text."""
    from conformance.checks import ALL_CHECKS

    width = max(len(check.id) for check in ALL_CHECKS)
    category = None
    for check in ALL_CHECKS:
        if check.category != category:
            category = check.category
            print(f"{category}:", file=out)
        print(f"  {check.id:<{width}}  {plain_text(_promise(check.doc))}", file=out)
    out.flush()


def plain_text(text: str) -> str:
    """reStructuredText inline markup as plain text: roles (``:func:`x```), literals
    (````x````), emphasis and interpreted text lose their markup."""
    text = re.sub(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1), text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_?", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text)
    return text


def _promise(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join(doc.strip().split("\n\n", 1)[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def _usage_error(message: str) -> int:
    print(f"python -m conformance: error: {message}", file=sys.stderr)
    return EXIT_USAGE
