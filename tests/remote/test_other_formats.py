"""The other formats over HTTP: those read through the seam work as local files do; GGUF,
whose reader maps the whole file, says in one line that it is not read over the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paramctl.errors import ExitCode
from tests.remote.conftest import Nginx
from tests.remote.test_errors import one_line_error
from tests.remote.test_http import run


def test_a_legacy_torch_file_lists(nginx: Nginx) -> None:
    torch.save({"w": torch.ones(2, 3)}, nginx.file("legacy/model.pt"), _use_new_zipfile_serialization=False)
    code, out, _ = run("list", nginx.url("legacy/model.pt"))
    assert code == 0 and "[2, 3]" in out


def test_npz_and_npy_files_list_and_show(nginx: Nginx) -> None:
    np.savez(nginx.file("numpy/arrays.npz"), a=np.arange(6.0).reshape(2, 3), b=np.zeros(4))
    np.save(nginx.file("numpy/one.npy"), np.arange(5, dtype=np.int64))
    code, out, _ = run("list", nginx.url("numpy/arrays.npz"))
    assert code == 0 and "[2, 3]" in out
    code, out, _ = run("list", "--stats", "-f", "json", nginx.url("numpy/one.npy"))
    assert code == 0, out


def test_a_gguf_file_over_the_network_is_one_line(nginx: Nginx) -> None:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(nginx.file("gguf/model.gguf")), "llama")
    writer.add_tensor("w", np.zeros((2, 2), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code, _, err = run("list", nginx.url("gguf/model.gguf"))
    assert code == ExitCode.IO
    assert "GGUF (llama.cpp) files are not read over the network" in one_line_error(err)
