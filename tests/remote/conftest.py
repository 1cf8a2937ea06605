"""Servers on loopback for the remote tests: nginx serving files the tests write (its
access log counts the requests and bytes), moto's S3 server, a server that never answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paramctl.remote import configured

_NGINX_CONF = """
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format counted '$request_method $uri $status $body_bytes_sent "$http_range"';
    access_log {root}/access.log counted;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location /norange/ {{ max_ranges 0; }}
        location /denied/ {{ return 403; }}
        location /private/ {{ return 401; }}
    }}
}}
"""


@dataclass(frozen=True)
class Request:
    """One line of the access log."""

    method: str
    path: str
    status: int
    body_bytes: int
    range: str


class Nginx:
    """nginx serving ``root`` on a loopback port; what it served, from its access log."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port, self.www = root, port, root / "www"
        self._mark = 0

    def url(self, relative: str) -> str:
        return f"http://127.0.0.1:{self.port}/{relative}"

    def file(self, relative: str) -> Path:
        path = self.www / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def mark(self) -> None:
        """Count from here on."""
        self._mark = self._log().stat().st_size

    def requests(self) -> list[Request]:
        """The requests served since :meth:`mark`."""
        time.sleep(0.05)  # nginx writes the line after the response
        with open(self._log(), "rb") as log:
            log.seek(self._mark)
            lines = log.read().decode().splitlines()
        served = []
        for line in lines:
            method, path, status, sent, quoted = line.split(" ", 4)
            served.append(Request(method, path, int(status), int(sent), quoted.strip('"')))
        return served

    def fetched(self) -> int:
        return sum(request.body_bytes for request in self.requests())

    def _log(self) -> Path:
        return self.root / "access.log"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(path)), None
    )
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): the HTTP tests need a real server")
    root = tmp_path_factory.mktemp("nginx")
    for folder in ("www", "tmp"):
        (root / folder).mkdir()
    os.chmod(root, 0o755)
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(_NGINX_CONF.format(root=root, port=port, user=user))
    (root / "access.log").touch()
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Nginx(root, port)
    for _ in range(100):
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None:
            pytest.fail(f"nginx did not start: {process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.05)
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
