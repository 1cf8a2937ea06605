"""nginx on loopback with its own configuration, serving a folder and logging, per
request, the range asked for and the body bytes sent (the tests' and the benchmark's
count of what paramctl fetched)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_NGINX_CONF = """
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format counted '$request_method $uri $status $body_bytes_sent "$http_range" "$http_authorization"';
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
        location /org/moved/resolve/ {{ return 302 http://localhost:{port}/cdn/model.safetensors; }}
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
    authorization: str


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
            asked, _, authorization = quoted.strip('"').partition('" "')
            served.append(Request(method, path, int(status), int(sent), asked, authorization))
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


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(path)), None
    )


def start_nginx(binary: str, root: Path, www: Path | None = None) -> tuple[subprocess.Popen[bytes], Nginx]:
    """nginx serving ``www`` (``root/www`` by default), its files and log under ``root``."""
    (root / "www").mkdir(exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    if www is not None:
        (root / "www").rmdir()
        (root / "www").symlink_to(www)
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
    for _ in range(100):
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return process, Nginx(root, port)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"nginx did not start: {process.stderr.read().decode() if process.stderr else ''}")
