"""The Typer application, and the one place errors become exit codes.

A library error is one line on stderr and the exit code its class names; any other
exception is a bug in paramctl: one line saying so, exit code 70. ``--debug`` shows the
traceback instead.

>>> bug_message(RuntimeError("simulated crash\\nmore detail"))
'unexpected RuntimeError: simulated crash; this is a bug in paramctl: rerun with --debug for the traceback'
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info
from typer.models import CommandInfo

from paramctl import __version__
from paramctl.errors import ExitCode, ParamctlError
from paramctl.render.engine import Environment, escape_control

if TYPE_CHECKING:
    # The click that typer carries (typer<0.29 vendors it).
    from typer import _click as click


class LazyCommands(TyperGroup):
    """The command group, each command's module imported and its options built only when
    that command runs (or ``--help`` lists it): a command pays for itself, not for all."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            target, usage = COMMANDS[cmd_name]
            module_name, _, function_name = target.partition(":")
            module = importlib.import_module(module_name)
            info = CommandInfo(
                cmd_name,
                callback=reports_errors(getattr(module, function_name)),
                cls=getattr(module, usage) if usage else None,
            )
            self.commands[cmd_name] = get_command_from_info(
                info, pretty_exceptions_short=False, rich_markup_mode=None
            )
        return super().get_command(ctx, cmd_name)


# Every command: its name, ``module:function``, and the name of its click class in that
# module (for commands with their own usage line); filled by :func:`register`.
COMMANDS: dict[str, tuple[str, str | None]] = {}

app = typer.Typer(
    name="paramctl",
    cls=LazyCommands,
    help="Inspect and reinitialize neural-network checkpoints (PyTorch, safetensors, Hugging Face "
    "shards, torch.distributed.checkpoint, GGUF, NumPy, MXNet) without loading them whole.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def register(name: str, target: str, *, usage: str | None = None) -> None:
    """Add the function ``target`` (``module:function``) as the command ``name``, its errors
    reported by :func:`reports_errors`; ``usage`` names its click class in that module."""
    COMMANDS[name] = (target, usage)


def reports_errors(function: F) -> F:
    """Turn errors into one line on stderr and their exit code (tracebacks with ``--debug``)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return function(*args, **kwargs)
            finally:
                # A full disk or a closed pipe behind stdout shows here, where it is handled,
                # instead of at exit.
                sys.stdout.flush()
        except ParamctlError as exc:
            if kwargs.get("debug"):
                raise
            fail(str(exc), exc.exit_code)
        except BrokenPipeError:
            # The reader (head, grep -m1) has what it wanted; stop quietly.
            _drop_stdout()
            raise typer.Exit(ExitCode.OK) from None
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except OSError as exc:
            if kwargs.get("debug"):
                raise
            _drop_stdout()
            fail(io_message(exc), ExitCode.IO)
        except Exception as exc:
            if kwargs.get("debug"):
                raise
            fail(bug_message(exc), ExitCode.BUG)

    return wrapper  # type: ignore[return-value]


def io_message(exc: OSError) -> str:
    """One line for an operating-system error that reached the command line: a file the
    library did not name (standard output filling up, most often).

    >>> io_message(OSError(28, "No space left on device"))
    'cannot write the output: No space left on device'
    >>> io_message(FileNotFoundError(2, "No such file or directory", "m.pt"))
    'm.pt: No such file or directory'
    """
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"cannot write the output: {exc.strerror or exc}"


def _drop_stdout() -> None:
    """Point stdout at /dev/null once writing it failed, so the final flush at exit cannot
    fail again (Python would print a second error and exit 120)."""
    try:
        sys.stdout.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


def bug_message(exc: BaseException) -> str:
    """One line for an exception paramctl did not expect (its text may run to many lines)."""
    first_line = next(iter(str(exc).splitlines()), "")
    detail = f": {first_line}" if first_line else ""
    return (
        f"unexpected {type(exc).__name__}{detail}; this is a bug in paramctl: "
        "rerun with --debug for the traceback"
    )


def fail(message: str, code: ExitCode) -> NoReturn:
    """``paramctl: error: message`` on stderr, and exit with ``code``. Paths and names in
    the message are a file's words: their control characters are escaped as on stdout."""
    line = f"paramctl: error: {escape_control(message)}"
    Environment.current().err_console().print(line, markup=False, highlight=False)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paramctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Inspect and reinitialize neural-network checkpoints."""
