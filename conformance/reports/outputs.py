"""Where reports go: checked before any check runs, claimed with a placeholder, written atomically.

A front end calls three functions around the run loop::

    problem = check_paths(paths)               # before loading: exit 2 with the message
    problem = claim_paths(paths, targets=...)  # just before the checks
    ...                                        # the checks
    written, problems = write_outputs(runs, paths, ...)  # after: never raises

:func:`check_paths` refuses a report path that cannot be written (a folder, a path under
``/proc``, a missing or read-only folder, a device or pipe); :func:`claim_paths` then
replaces any existing report at each path with a placeholder saying the run has not
finished, so a run that is killed never leaves an older report claiming certification in
its place. Missing folders are never created silently: only ``create_dirs`` creates them.

Every write is atomic: the text goes to a temporary file in the same folder, which then
replaces the target with :func:`os.replace`. Concurrent writers leave one complete file,
a kill mid-write leaves the previous complete file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.core.results import DecoderRun, Unloadable
from conformance.core.values import clean_text
from conformance.reports import github
from conformance.reports.json_report import json_text
from conformance.reports.markdown import placeholder_markdown, to_markdown

__all__ = [
    "OutputPaths",
    "atomic_write",
    "check_paths",
    "claim_paths",
    "path_problem",
    "write_outputs",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8; unencodable characters escaped) to ``path`` atomically.

    The folder must exist. The file gets the mode a plain ``open`` would give it (or the
    mode of the file it replaces).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    data = text.encode("utf-8", "backslashreplace")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def path_problem(
    path: str | Path, *, option: str, create_dirs: bool = False, create_dirs_option: str | None = "--create-dirs"
) -> str | None:
    """Why a report cannot be written to ``path``, or ``None`` when it can.

    Tried for real: a temporary file is created in the folder and removed, so read-only
    folders and pseudo file systems (``/proc``) are found before any check runs. An
    existing path must be a regular file (never a folder, device or pipe: replacing
    ``/dev/null`` would delete it for everyone). With ``create_dirs`` a missing folder is
    created; without it, it is a problem, and the message offers ``create_dirs_option``
    where the front end has one (pytest has none: the folder must be made).
    """
    path = Path(path)
    shown = f"{option} {str(path)!r}"
    if not path.name or str(path).endswith(os.sep) or path.is_dir():
        return f"{shown} is a folder; give a file name inside it"
    if path.exists() and not path.is_file():
        return f"{shown} exists and is not a regular file (a device, pipe or socket); choose another path"
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        if not create_dirs:
            offer = f" or pass {create_dirs_option}" if create_dirs_option else ""
            return f"{shown}: folder {str(folder)!r} does not exist; create it first (mkdir -p {folder}){offer}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"{shown}: cannot create folder {str(folder)!r}: {err.strerror or err}"
    if not folder.is_dir():
        return f"{shown}: {str(folder)!r} is not a folder"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        return f"{shown} cannot be written: {err.strerror or err} in folder {str(folder)!r}"
    if path.exists() and not os.access(path, os.W_OK) and not os.access(folder, os.W_OK):
        return f"{shown} exists and cannot be replaced (permission denied)"
    return None


@dataclass(frozen=True)
class OutputPaths:
    """The files a run writes: the JSON report and the Markdown certificate (either may be off)."""

    report: Path | None
    markdown: Path | None


def check_paths(
    paths: OutputPaths, *, create_dirs: bool = False,
    report_option: str = "--report", markdown_option: str = "--markdown",
    create_dirs_option: str | None = "--create-dirs",
) -> str | None:
    """Every problem with ``paths`` as one message, or ``None``. Writes nothing but the
    folders ``create_dirs`` asks for."""
    problems = []
    if paths.report is not None and paths.markdown is not None and _same(paths.report, paths.markdown):
        problems.append(
            f"{report_option} and {markdown_option} name the same file {str(paths.report)!r}; "
            "give each its own path"
        )
    for path, option in ((paths.report, report_option), (paths.markdown, markdown_option)):
        if path is not None:
            problem = path_problem(
                path, option=option, create_dirs=create_dirs, create_dirs_option=create_dirs_option
            )
            if problem:
                problems.append(problem)
    return "\n".join(problems) if problems else None


def _same(one: Path, two: Path) -> bool:
    return os.path.abspath(one) == os.path.abspath(two)


def _placeholder_note(targets: Sequence[str]) -> str:
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    what = ", ".join(targets) if targets else "the requested decoders"
    return (
        f"A certification of {what} started at {started} and has not finished. If this is "
        "still here after the command ended, the run was killed before it could write its "
        "report: nothing is certified."
    )


def claim_paths(paths: OutputPaths, *, targets: Sequence[str] = ()) -> str | None:
    """Replace each output file with a report saying the run has not finished; a message
    if that cannot be done, else ``None``."""
    note = _placeholder_note(targets)
    try:
        if paths.report is not None:
            atomic_write(paths.report, json_text([], run_state="running", note=note))
        if paths.markdown is not None:
            atomic_write(paths.markdown, placeholder_markdown(note))
    except OSError as err:
        return f"cannot write the report placeholder: {_describe(err)}"
    return None


def write_outputs(
    runs: Sequence[DecoderRun],
    paths: OutputPaths,
    *,
    unloadable: Sequence[Unloadable] = (),
    run_state: str = "finished",
    note: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Write the JSON report, the Markdown certificate and the GitHub job summary.

    Never raises (the checks already ran; losing their results to a write error would be
    worse than saying so): returns ``(written, problems)``, ``written`` as ``(label,
    path)`` pairs (``"Report"``, ``"Certificate"``, ``"Job summary"``), ``problems`` as
    messages for what could not be written.
    """
    env = os.environ if env is None else env
    written: list[tuple[str, Path]] = []
    problems: list[str] = []
    markdown_text: str | None = None

    def markdown() -> str:
        nonlocal markdown_text
        if markdown_text is None:
            markdown_text = to_markdown(runs, unloadable=unloadable, run_state=run_state, note=note)
        return markdown_text

    if paths.report is not None:
        try:
            atomic_write(paths.report, json_text(runs, unloadable=unloadable, run_state=run_state, note=note))
            written.append(("Report", paths.report))
        except Exception as err:  # noqa: BLE001 - see the docstring
            problems.append(f"could not write the JSON report {str(paths.report)!r}: {_describe(err)}")
    if paths.markdown is not None:
        try:
            atomic_write(paths.markdown, markdown())
            written.append(("Certificate", paths.markdown))
        except Exception as err:  # noqa: BLE001
            problems.append(f"could not write the Markdown certificate {str(paths.markdown)!r}: {_describe(err)}")
    summary_path = github.step_summary_path(env)
    if summary_path is not None:
        try:
            github.append_step_summary(summary_path, markdown())
            written.append(("Job summary", summary_path))
        except Exception as err:  # noqa: BLE001
            problems.append(f"could not append to $GITHUB_STEP_SUMMARY {str(summary_path)!r}: {_describe(err)}")
    return written, problems


def _describe(err: BaseException) -> str:
    try:
        return clean_text(f"{type(err).__name__}: {err}")
    except Exception:  # noqa: BLE001
        return type(err).__name__
