"""The ``paramctl`` command line: one module per command, each parsing its options,
calling the library and handing the result to its view in :mod:`paramctl.render`.

The command modules are light to import: the heavy parts of each (torch, values, Rich)
load inside the command, when it runs, so ``paramctl --help`` stays fast.
"""

from paramctl.cli.app import app, register

# In the order --help lists them; each module is imported when its command runs.
register("list", "paramctl.cli.list_cmd:list_command")
register("shared", "paramctl.cli.shared_cmd:shared_command")
register("show", "paramctl.cli.show_cmd:show_command", usage="ShowUsage")
register("check", "paramctl.cli.check_cmd:check_command")
register("grads", "paramctl.cli.grads_cmd:grads_command")
register("init", "paramctl.cli.init_cmd:init_command", usage="InitHelp")
register("convert", "paramctl.cli.convert_cmd:convert_command")

__all__ = ["app"]
