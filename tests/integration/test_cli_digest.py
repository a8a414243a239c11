"""`reconciler digest URL` prints what an http check's `digest` must be."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from reconciler.cli import main


def test_digest_of_a_served_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = b"<html>healthy</html>\n"
    (tmp_path / "page.html").write_bytes(body)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/page.html"
        assert main(["digest", url]) == 0
        assert capsys.readouterr().out.strip() == hashlib.md5(body).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
    assert main(["digest", url]) == 2
    assert "cannot digest" in capsys.readouterr().err
