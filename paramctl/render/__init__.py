"""How results look: the output engine (:mod:`paramctl.render.engine`), the columns views
share, one view per command, and the progress bar of long scans.

Views turn library results (dataclasses with ``to_dict()``) into reports; nothing here
reads files, computes, or is imported by the library.
"""
