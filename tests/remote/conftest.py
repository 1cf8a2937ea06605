"""Servers on loopback for the remote tests: nginx serving files the tests write (its
access log counts the requests and bytes), a server that never answers; each test keeps
its fetched ranges in a cache of its own."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paramctl.remote import configured
from tests.remote.servers import Nginx, find_nginx, free_port, start_nginx

__all__ = ["Nginx", "free_port"]


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): the HTTP tests need a real server")
    process, server = start_nginx(binary, tmp_path_factory.mktemp("nginx"))
    yield server
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that takes connections and never answers (for timeouts)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/model.safetensors"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test keeps fetched ranges in a cache directory of its own."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    with configured():
        yield cache / "paramctl"
