"""``paramctl list`` of a 1 GiB F16 GGUF beside ``gguf-dump``, the gguf package's own script.

Run: ``python bench/bench_gguf.py [--repeat N]``. The file is a Qwen2-0.5B-shaped model
(24 blocks, hidden size 896, a 151,936-token vocabulary in the metadata) in F16, about
1 GiB, written once by ``GGUFWriter`` into ``bench/data``. Prints a markdown table of
medians, their ratio (paramctl over gguf-dump; below 1 is faster) and peak RSS: the
tensor listing against ``gguf-dump --no-tensors``-less default output, and the listing
with ``--extras`` (every key-value, the vocabulary summarized, as gguf-dump does).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from common import DATA, PARAMCTL, PYTHON, compare

HEADER = (
    "| case | paramctl (median) | gguf-dump (median) | ratio (speed-up) "
    "| paramctl peak RSS | gguf-dump peak RSS |\n|---|---|---|---|---|---|"
)
GGUF_DUMP = [PYTHON, "-m", "gguf.scripts.gguf_dump"]

_MAKE = """
import sys
import numpy as np
import gguf

HIDDEN, FFN, KV, LAYERS, VOCAB = 896, 4864, 128, 24, 151936
shapes = {"token_embd.weight": (VOCAB, HIDDEN)}
for i in range(LAYERS):
    for name, shape in {
        "attn_norm.weight": (HIDDEN,), "attn_q.weight": (HIDDEN, HIDDEN), "attn_q.bias": (HIDDEN,),
        "attn_k.weight": (KV, HIDDEN), "attn_k.bias": (KV,), "attn_v.weight": (KV, HIDDEN),
        "attn_v.bias": (KV,), "attn_output.weight": (HIDDEN, HIDDEN), "ffn_norm.weight": (HIDDEN,),
        "ffn_gate.weight": (FFN, HIDDEN), "ffn_up.weight": (FFN, HIDDEN), "ffn_down.weight": (HIDDEN, FFN),
    }.items():
        shapes[f"blk.{i}.{name}"] = shape
shapes["output_norm.weight"] = (HIDDEN,)
shapes["output.weight"] = (VOCAB, HIDDEN)
writer = gguf.GGUFWriter(sys.argv[1], "qwen2")
writer.add_context_length(32768)
writer.add_embedding_length(HIDDEN)
writer.add_block_count(LAYERS)
writer.add_tokenizer_model("gpt2")
writer.add_token_list([f"token{i}" for i in range(VOCAB)])
writer.add_token_types([1] * VOCAB)
for name, shape in shapes.items():
    writer.add_tensor_info(name, shape, np.dtype(np.float16), int(np.prod(shape)) * 2)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_ti_data_to_file()
rng = np.random.default_rng(0)
for shape in shapes.values():
    writer.write_tensor_data((rng.standard_normal(shape, np.float32) * 0.02).astype(np.float16))
writer.close()
"""


def big_gguf() -> Path:
    path = DATA / "big.gguf"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        subprocess.run([PYTHON, "-c", _MAKE, str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = big_gguf()
    size = path.stat().st_size / (1 << 30)
    print(f"{path.name}: {size:.2f} GiB\n\n{HEADER}")
    cases = {
        "list (tensors)": ([*PARAMCTL, "list", str(path), "-f", "tsv"], [*GGUF_DUMP, str(path)]),
        "list --extras (tensors and key-values)": (
            [*PARAMCTL, "list", str(path), "--extras", "-f", "tsv"],
            [*GGUF_DUMP, str(path)],
        ),
        "list --extras -f json": (
            [*PARAMCTL, "list", str(path), "--extras", "-f", "json"],
            [*GGUF_DUMP, "--json", str(path)],
        ),
    }
    for label, (ours, baseline) in cases.items():
        print(compare(label, ours, baseline, repeat=args.repeat).row(), flush=True)


if __name__ == "__main__":
    main()
