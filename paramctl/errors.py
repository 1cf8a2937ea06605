"""Errors paramctl raises, each with the exit code the command line turns it into."""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class ExitCode(IntEnum):
    """Exit codes shared by every command (documented in the README's table).

    >>> ExitCode.BUG, int(ExitCode.INTERRUPTED)
    (<ExitCode.BUG: 70>, 130)
    """

    OK = 0
    NEGATIVE = 1  # a well-formed question with a "no" answer: nothing matched, problems found
    USAGE = 2
    INVALID_INPUT = 3
    UNSAFE = 4
    IO = 5
    BUG = 70  # an exception paramctl did not expect: sysexits' EX_SOFTWARE
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


class ParamctlError(Exception):
    """Base class: a problem to report in one line, with an exit code.

    >>> NothingSelected("no tensor matches --match '*.wieght'").exit_code
    <ExitCode.NEGATIVE: 1>
    """

    exit_code: ExitCode = ExitCode.INVALID_INPUT


class UsageError(ParamctlError):
    """The arguments do not make sense together."""

    exit_code = ExitCode.USAGE


class NothingSelected(ParamctlError):
    """A selection matched no tensor."""

    exit_code = ExitCode.NEGATIVE


class CorruptCheckpoint(ParamctlError):
    """The input is not a checkpoint paramctl can read, or it is damaged."""

    exit_code = ExitCode.INVALID_INPUT


class LimitExceeded(CorruptCheckpoint):
    """The input goes past one of paramctl's documented limits (README: Limits): too large
    or too complex to read safely. Nothing was allocated for it or executed.

    >>> LimitExceeded("the pickle", "memo index 2147483647", "its memo holds at most 8,388,608").exit_code
    <ExitCode.INVALID_INPUT: 3>
    """

    def __init__(self, what: str, found: str, limit: str) -> None:
        super().__init__(f"{what} is too large or too complex to read: {found}; {limit} (README: Limits)")


class UnsafePickle(ParamctlError):
    """The pickle asks for a global outside the allowlist; nothing was executed."""

    exit_code = ExitCode.UNSAFE

    # Whether ``--trust`` may load the file anyway; not when it can be read two ways.
    trust_offered = True

    def __init__(self, global_name: str, detail: str = "") -> None:
        self.global_name = global_name
        message = (
            f"refusing to load: the pickle references {global_name!r}, which is not on the "
            "allowlist of plain tensor data (nothing was executed)"
        )
        super().__init__(message + (f"; {detail}" if detail else ""))


class AmbiguousFile(UnsafePickle):
    """The file can be read two ways, and one of the readings would run code: refused
    whole, ``--trust`` included (which reading would it trust?).

    >>> AmbiguousFile("m.pt: two records are named archive/data.pkl", "posix.system").exit_code
    <ExitCode.UNSAFE: 4>
    """

    trust_offered = False

    def __init__(self, problem: str, global_name: str) -> None:
        ParamctlError.__init__(
            self,
            f"refusing to load: {problem}, and one reading references {global_name!r}, which "
            "torch.load(weights_only=False) would import (nothing was executed)",
        )
        self.global_name = global_name


class CheckpointIOError(ParamctlError):
    """A file could not be read or written (missing, permission, disk full)."""

    exit_code = ExitCode.IO


class IncompatibleTensors(ParamctlError):
    """The requested change does not fit some tensors (shape, dtype or dimensions)."""

    exit_code = ExitCode.INVALID_INPUT


class ModelCodeError(ParamctlError):
    """Code named by ``--model`` (or a ``--loss`` function) could not be imported or run."""

    exit_code = ExitCode.INVALID_INPUT


class AlreadyInitialized(ParamctlError):
    """Parameters already hold values and ``force_reinit`` was not given (Gluon's rule)."""

    exit_code = ExitCode.USAGE

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        super().__init__(
            f"{shown} already initialized; pass force_reinit=True to overwrite (nothing was changed)"
        )
