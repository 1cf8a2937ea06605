"""The ``paramctl`` command line."""

from paramctl.cli.commands import app

__all__ = ["app"]
