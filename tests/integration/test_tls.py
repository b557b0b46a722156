"""TLS: `restmq serve --tls-cert/--tls-key` serves HTTPS and WSS."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.helpers.auth import restmq_cli
from tests.helpers.server import ServeProcess, free_port
from tests.helpers.tls import self_signed, trusting
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_https_and_wss(redis_url: str, tmp_path: Path, http_server: str) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    args = ["--redis", redis_url, "--server", http_server, "--tls-cert", str(cert), "--tls-key", str(key)]
    server = ServeProcess(args, port, tmp_path / "tls.log")
    base = f"https://127.0.0.1:{port}"
    context = trusting(cert)
    try:

        def ready() -> bool:
            assert server.proc.poll() is None, server.log()
            try:
                return httpx.get(base + "/ready", verify=context, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 30, 0.05, "restmq serve to answer over https")
        async with httpx.AsyncClient(base_url=base, verify=context) as client:
            added = await client.post("/q/secure", data={"value": "over tls"})
            assert added.status_code == 200 and added.text == "secure:1\r\n"
            got = await client.get("/q/secure")
            assert got.json() == {"key": "secure:1", "value": "over tls", "count": 1}
            await client.post("/q/secure", data={"value": "over wss"})
        async with connect(f"wss://127.0.0.1:{port}/ws/secure", ssl=context, open_timeout=10) as ws:
            frame = orjson.loads(await ws.recv())
            assert frame["value"] == "over wss"

        tls12 = trusting(cert)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.2 clients are served too
        assert httpx.get(base + "/health", verify=tls12, timeout=5).status_code == 200
        with pytest.raises(httpx.ConnectError):  # the certificate is checked: an untrusting client refuses
            httpx.get(base + "/health", verify=ssl.create_default_context(), timeout=5)
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port gets no answer
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()
    assert "https://127.0.0.1" in server.log()


@pytest.mark.parametrize("given", ["--tls-cert", "--tls-key"])
def test_cert_and_key_go_together(redis_url: str, tmp_path: Path, given: str) -> None:
    cert, _ = self_signed(tmp_path)
    result = restmq_cli("serve", "--redis", redis_url, "--port", str(free_port()), given, str(cert))
    assert result.returncode == 2 and "--tls-cert and --tls-key go together" in result.stderr, result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
def test_a_bad_certificate_is_a_one_line_error(redis_url: str, tmp_path: Path, http_server: str, workers: str) -> None:
    _, key = self_signed(tmp_path)
    not_a_cert = tmp_path / "not-a-cert.pem"
    not_a_cert.write_text("hello\n")
    args = ["--redis", redis_url, "--server", http_server, "--workers", workers, "--port", str(free_port())]
    result = restmq_cli("serve", *args, "--tls-cert", str(not_a_cert), "--tls-key", str(key))
    assert result.returncode == 1, result.stderr
    assert f"Error: cannot load --tls-cert {not_a_cert}" in result.stderr and "Traceback" not in result.stderr
