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
``flashdreams.conformance.decoders`` (see :mod:`conformance.discovery`). A registered
decoder that cannot be loaded is reported as unloadable and the others still run.

Exit status: 0 every decoder is certified; 1 at least one is not; 2 a target given on
the command line could not be loaded, a spec is invalid, or the arguments are wrong
(nothing is run then), or, with ``--installed``, nothing is registered or a registered
decoder could not be loaded (the loadable ones are still certified and reported).
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from conformance.discovery import LoadedDecoders, Unloadable
    from conformance.results import Certification
    from conformance.spec import DecoderSpec

__all__ = ["EXIT_CERTIFIED", "EXIT_NOT_CERTIFIED", "EXIT_USAGE", "build_parser", "main"]

EXIT_CERTIFIED = 0
EXIT_NOT_CERTIFIED = 1
EXIT_USAGE = 2

_FALLBACK_DEFAULT_TARGET = "reference_decoders.toy:toy_spec"


def default_target() -> str:
    """The decoder ``certify`` checks when given no target (``conformance.DEFAULT_TARGET``)."""
    import conformance

    return str(getattr(conformance, "DEFAULT_TARGET", _FALLBACK_DEFAULT_TARGET))


def build_parser() -> argparse.ArgumentParser:
    from conformance.profiles import PROFILES

    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Conformance kit for streaming video decoders (StreamingVideoDecoder).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    certify = commands.add_parser(
        "certify",
        help="run every conformance check on decoders and report",
        description="Run the conformance checks on each TARGET, print a summary, write a "
        "JSON report. Exit 0 certified, 1 not certified, 2 unloadable target or bad arguments.",
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
        metavar="PATH",
        default=None,
        help="where to write the JSON report (default: ./conformance-report.json)",
    )
    certify.add_argument(
        "--no-report", action="store_true", help="do not write a JSON report"
    )
    certify.add_argument(
        "--markdown",
        metavar="PATH",
        default=None,
        help="also write a Markdown certificate (for a pull request) to PATH",
    )
    certify.add_argument(
        "--installed",
        action="store_true",
        help="also certify every decoder that installed packages register under the "
        "entry-point group flashdreams.conformance.decoders",
    )
    certify.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="default",
        help="Hypothesis profile: how many examples each check tries (default: default)",
    )
    certify.add_argument(
        "--seed",
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
        help="run only this check (repeatable); see --list-checks",
    )
    certify.add_argument(
        "--list-checks",
        action="store_true",
        help="list the check ids with the promise each guards, and exit",
    )
    certify.set_defaults(handler=_certify_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m conformance``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _certify_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from conformance.checks import get_check
    from conformance.report import (
        DEFAULT_REPORT_PATH,
        format_certification,
        replay_command,
        write_json_report,
        write_markdown_report,
    )
    from conformance.spec import TargetError

    out = out or sys.stdout
    if args.list_checks:
        _print_checks(out)
        return EXIT_CERTIFIED

    if args.checks:
        try:
            check_ids: list[str] | None = [get_check(check_id).id for check_id in args.checks]
        except KeyError as error:
            return _usage_error(f"unknown --check: {error.args[0] if error.args else error}")
    else:
        check_ids = None

    targets = list(dict.fromkeys(args.targets))
    if not targets and not args.installed:
        targets = [default_target()]
    loaded: list[tuple[str, DecoderSpec]] = []
    for target in targets:
        try:
            specs = _load(target)
        except (TargetError, ValueError) as error:
            return _usage_error(f"cannot certify {target!r}:\n{error}")
        loaded += [(target, spec) for spec in specs]

    unloadable: list[Unloadable] = []
    if args.installed:
        installed = _load_installed(out)
        if installed is None:
            return EXIT_USAGE
        unloadable = installed.unloadable
        for entry, specs in installed.loaded:
            if entry.target not in targets:  # named on the command line too: certify it once
                targets.append(entry.target)
                loaded += [(entry.target, spec) for spec in specs]

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    certifications: list[Certification] = []
    configs: list[str | None] = []
    for index, (target, spec) in enumerate(loaded):
        if index:
            print(file=out)
        print(f"Certifying {spec.name} ({target}): profile {args.profile}, seed {seed} ...", file=out, flush=True)
        recorder = _ConfigRecorder(spec.factory)
        certification = _certify(
            replace(spec, factory=recorder), target, profile=args.profile, seed=seed, check_ids=check_ids
        )
        certifications.append(certification)
        configs.append(recorder.text)
        print(format_certification(certification, target=target), file=out, flush=True)

    print(file=out)
    all_certified = all(cert.certified for cert in certifications) and not unloadable
    if unloadable:
        print(f"Could not load {len(unloadable)} registered decoder(s); they were not certified:", file=out)
        for failed in unloadable:
            origin = f" (from {failed.distribution})" if failed.distribution else ""
            print(f"  {failed.name} = {failed.target}{origin}", file=out)
            print("\n".join("      " + line for line in failed.error.splitlines()), file=out)
    if len(certifications) + len(unloadable) > 1:
        verdicts = ", ".join(
            [
                f"{cert.decoder} {'certified' if cert.certified else 'NOT certified'}"
                for cert in certifications
            ]
            + [f"{entry.name} unloadable" for entry in unloadable]
        )
        print(f"Verdict: {'CERTIFIED' if all_certified else 'NOT CERTIFIED'} ({verdicts})", file=out)
    if certifications:
        print(f"Seed {seed}, profile {args.profile}. Replay this run with:", file=out)
        rerun = replay_command(targets, seed=seed, profile=args.profile, check_ids=check_ids or ())
        print(f"  {rerun}", file=out)
    failing = [
        (target, result.check_id)
        for (target, _), cert in zip(loaded, certifications)
        for result in cert.results
        if result.status in ("failed", "error")
    ]
    if failing:
        print("Replay one failing check with:", file=out)
        for target, check_id in failing:
            print(
                f"  {replay_command(target, seed=seed, profile=args.profile, check_id=check_id)}",
                file=out,
            )

    report_targets: list[str | None] = [target for target, _ in loaded]
    specs_run: list[DecoderSpec | None] = [spec for _, spec in loaded]
    if not args.no_report:
        path = write_json_report(
            args.report or DEFAULT_REPORT_PATH, certifications, targets=report_targets,
            specs=specs_run, decoder_configs=configs, unloadable=unloadable,
        )
        print(f"Report: {path}", file=out)
    if args.markdown:
        path = write_markdown_report(
            args.markdown, certifications, targets=report_targets, specs=specs_run,
            decoder_configs=configs, unloadable=unloadable,
        )
        print(f"Certificate: {path}", file=out)
    if unloadable:
        return EXIT_USAGE
    return EXIT_CERTIFIED if all_certified else EXIT_NOT_CERTIFIED


def _load_installed(out: TextIO) -> LoadedDecoders | None:
    """The registered decoders, or ``None`` (after saying why) when none are registered."""
    from conformance.discovery import load_installed, no_decoders_registered_message, registered_decoders

    entries = registered_decoders()
    if not entries:
        _usage_error(f"--installed: {no_decoders_registered_message()}")
        return None
    print(
        f"Installed decoders ({len(entries)} registered): "
        + ", ".join(entry.label for entry in entries),
        file=out,
    )
    return load_installed(entries)


class _ConfigRecorder:
    """Wraps a spec's factory to keep ``str(decoder.config)`` of the first decoder it builds.

    The checks build their decoders themselves; recording on the way costs nothing,
    where building one more decoder just for the report could cost a checkpoint load.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        functools.update_wrapper(self, factory)
        self.factory = factory
        self.text: str | None = None
        self._seen = False

    def __call__(self) -> Any:
        from conformance.report import decoder_config_text

        decoder = self.factory()
        if not self._seen:
            self._seen = True
            self.text = decoder_config_text(decoder)
        return decoder


def _load(target: str) -> list[DecoderSpec]:
    """Load a target and reject spec mistakes (unknown expected failures) before anything runs."""
    from conformance.runner import validate_expected_failures
    from conformance.spec import load_target

    specs = list(load_target(target))
    for spec in specs:
        validate_expected_failures(spec)
    return specs


def _certify(
    spec: DecoderSpec,
    target: str,
    *,
    profile: str,
    seed: int,
    check_ids: Sequence[str] | None,
) -> Certification:
    from conformance.runner import certify

    return certify(spec, profile=profile, seed=seed, check_ids=check_ids, target=target)


def _print_checks(out: TextIO) -> None:
    """Each check id under its category, with the first sentence of the promise it guards."""
    from conformance.checks import ALL_CHECKS

    width = max(len(check.id) for check in ALL_CHECKS)
    category = None
    for check in ALL_CHECKS:
        if check.category != category:
            category = check.category
            print(f"{category}:", file=out)
        print(f"  {check.id:<{width}}  {_promise(check.doc)}", file=out)


def _promise(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join(doc.strip().split("\n\n", 1)[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def _usage_error(message: str) -> int:
    print(f"python -m conformance: error: {message}", file=sys.stderr)
    return EXIT_USAGE
