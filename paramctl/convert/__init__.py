"""Converting a checkpoint to another format: plan (what is kept, named and cast, from
metadata), cast (new bytes where they cannot be copied), write (the target's writer, one
atomic commit).

>>> import os, tempfile, torch
>>> folder = tempfile.mkdtemp()
>>> tied = torch.ones(2, 2)
>>> torch.save({"module.w": tied, "module.head": tied}, os.path.join(folder, "m.pt"))
>>> options = ConvertOptions(names=NameMap.parse(strip_prefixes=["module."]), dtype="bfloat16")
>>> result = convert(os.path.join(folder, "m.pt"), os.path.join(folder, "m.safetensors"), options=options)
>>> result.tensors, result.cast, result.renamed
(2, ['w', 'head'], 2)
"""

from paramctl.convert.plan import CAST_DTYPES, ConvertOptions, ConvertPlan, plan_conversion
from paramctl.convert.write import ConvertResult, convert, convert_checkpoint, parse_size, target_format
from paramctl.rename import NameMap

__all__ = [
    "CAST_DTYPES",
    "ConvertOptions",
    "ConvertPlan",
    "ConvertResult",
    "NameMap",
    "convert",
    "convert_checkpoint",
    "parse_size",
    "plan_conversion",
    "target_format",
]
