"""The ``paramctl`` command line: one module per command, each parsing its options,
calling the library and handing the result to its view in :mod:`paramctl.render`.

The command modules are light to import: the heavy parts of each (torch, values, Rich)
load inside the command, when it runs, so ``paramctl --help`` stays fast.
"""

from paramctl.cli.app import app, register
from paramctl.cli.check_command import check_command
from paramctl.cli.grads_command import grads_command
from paramctl.cli.init_command import InitHelp, init_command
from paramctl.cli.list_command import list_command
from paramctl.cli.shared_command import shared_command
from paramctl.cli.show_command import show_command

# In the order --help lists them.
register("list", list_command)
register("shared", shared_command)
register("show", show_command)
register("check", check_command)
register("grads", grads_command)
register("init", init_command, cls=InitHelp)

__all__ = ["app"]
