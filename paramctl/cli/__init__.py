"""The ``paramctl`` command line: one module per command, each parsing its options,
calling the library and handing the result to its view in :mod:`paramctl.render`.

The command modules are light to import: the heavy parts of each (torch, values, Rich)
load inside the command, when it runs, so ``paramctl --help`` stays fast.
"""

from paramctl.cli.app import app, register
from paramctl.cli.check_cmd import check_command
from paramctl.cli.grads_cmd import grads_command
from paramctl.cli.init_cmd import InitHelp, init_command
from paramctl.cli.list_cmd import list_command
from paramctl.cli.shared_cmd import shared_command
from paramctl.cli.show_cmd import ShowUsage, show_command

# In the order --help lists them.
register("list", list_command)
register("shared", shared_command)
register("show", show_command, cls=ShowUsage)
register("check", check_command)
register("grads", grads_command)
register("init", init_command, cls=InitHelp)

__all__ = ["app"]
