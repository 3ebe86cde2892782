"""An operable `facer serve`: GET /metrics (Prometheus, off unless enabled, behind the API key unless
public), JSON log lines, and SIGTERM draining the requests in flight before exit 0 (a real process)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from facer_cli.server.observe import JsonFormatter  # noqa: E402
from facer_cli.settings import Settings  # noqa: E402

KEY = "k" * 12 + "-test-key-0123"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the Prometheus text format."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def photo(bundled_images: Path, name: str = "yaoming.jpg") -> tuple[str, tuple[str, bytes, str]]:
    return ("files", (name, (bundled_images / name).read_bytes(), "image/jpeg"))


# -- /metrics ---------------------------------------------------------------------------
@pytest.mark.slow
def test_metrics_are_off_unless_enabled_and_prometheus_is_not_loaded(client_for, fake_engine):
    client = client_for()
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    assert "x-request-id" not in client.get("/health").headers  # no observer at all
    code = (
        "import sys; from facer_cli.server import create_app; from facer_cli.settings import Settings;"
        "create_app(Settings()); assert 'prometheus_client' not in sys.modules, 'loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_metrics_need_the_api_key_unless_public(client_for, fake_engine):
    guarded = client_for(metrics=True, api_key=KEY)
    assert guarded.get("/metrics").status_code == 401
    answer = guarded.get("/metrics", headers={"X-API-Key": KEY})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    public = client_for(metrics=True, metrics_public=True, api_key=KEY)
    assert public.get("/metrics").status_code == 200
    assert public.get("/users").status_code == 401  # only /metrics is opened


def test_requests_are_counted_by_route_template_and_status(client_for, fake_engine, bundled_images):
    client = client_for(metrics=True)
    for name in ("alice", "bob", "carol/x"):
        assert client.get(f"/users/{name.replace('/', '%2F')}").status_code == 404
    for path in ("/nope", "/nope/again", "/%FF"):
        client.get(path)
    assert client.post("/token/generate", files=[photo(bundled_images)]).status_code == 200
    assert client.post("/token/generate", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert client.get("/health").status_code == 200
    found = samples(client.get("/metrics").text)
    count = "facer_http_requests_total"
    assert value(found, count, method="GET", route="/users/{name}", status="404") == 3
    assert value(found, count, method="GET", route="unmatched", status="404") == 2
    assert value(found, count, method="GET", route="unmatched", status="400") == 1  # not UTF-8
    assert value(found, count, method="POST", route="/token/generate", status="200") == 1
    assert value(found, count, method="POST", route="/token/generate", status="415") == 1
    assert value(found, count, method="GET", route="/health", status="200") == 1
    routes = {dict(labels).get("route") for (name, labels) in found if name == count}
    assert not any("alice" in r or "nope" in r for r in routes if r), routes  # never a raw path
    assert value(found, "facer_http_request_duration_seconds_count", method="POST", route="/token/generate") == 2
    # Model time: only the request that ran the models.
    assert value(found, "facer_model_seconds_count", route="/token/generate") == 1
    assert value(found, "facer_model_seconds_sum", route="/token/generate") > 0
    assert value(found, "facer_http_errors_total", type="UnknownUserError") == 3
    assert value(found, "facer_http_errors_total", type="UnsupportedMediaError") == 1
    assert value(found, "facer_store_errors_total") == 0
    assert value(found, "facer_http_requests_in_flight") == 1  # the scrape itself
    assert value(found, "facer_model_slots") == 2 and value(found, "facer_model_running") == 0
    assert value(found, "facer_model_refused_total") == 0
    assert (
        value(
            found,
            "facer_info",
            version=_version(),
            model="fake",
            fingerprint=fake_engine.fingerprint,
            provider="CPUExecutionProvider",
        )
        == 1
    )
    assert any(name == "process_cpu_seconds_total" for name, _ in found) or sys.platform != "linux"


def _version() -> str:
    from facer_cli import __version__

    return __version__


def test_gallery_size_and_catch_up_are_exported_once_the_index_is_open(
    client_for, fake_engine, bundled_images, tmp_path
):
    client = client_for(metrics=True, min_valid_frames=1)
    found = samples(client.get("/metrics").text)
    assert not [name for name, _ in found if name.startswith("facer_gallery_")]  # no index yet
    assert client.post("/users/yao/enroll", files=[photo(bundled_images)]).status_code == 201
    assert client.post("/identify", files=[photo(bundled_images)]).status_code == 200
    found = samples(client.get("/metrics").text)
    model = fake_engine.fingerprint
    assert value(found, "facer_gallery_templates", model=model) == 1
    assert value(found, "facer_gallery_changes_behind", model=model) == 0
    assert 0 <= value(found, "facer_gallery_sync_age_seconds", model=model) < 5
    # Another process enrolls: the index is one insert behind until its next search.
    from facer_cli.service import Facer

    other = Settings.from_values({"db": str(tmp_path / "facer.db"), "min_valid_frames": 1})
    Facer(other, engine=fake_engine).enroll("gdp", [bundled_images / "gdp.jpg"])
    found = samples(client.get("/metrics").text)
    assert value(found, "facer_gallery_changes_behind", model=model) == 1
    assert value(found, "facer_gallery_templates", model=model) == 1
    assert client.post("/identify", files=[photo(bundled_images)]).status_code == 200
    found = samples(client.get("/metrics").text)
    assert value(found, "facer_gallery_changes_behind", model=model) == 0
    assert value(found, "facer_gallery_templates", model=model) == 2


def test_store_errors_are_counted(client_for, fake_engine, tmp_path):
    client = client_for(metrics=True)
    db = tmp_path / "facer.db"
    db.unlink()
    db.mkdir()  # the database is now a folder: every store request fails
    answer = client.get("/users")
    assert answer.status_code == 503, answer.text
    found = samples(client.get("/metrics").text)
    error_type = answer.json()["error"]["type"]
    assert value(found, "facer_http_errors_total", type=error_type) == 1
    assert value(found, "facer_store_errors_total") == 1


def test_each_app_has_its_own_registry(client_for, fake_engine):
    first, second = client_for(metrics=True), client_for(metrics=True)
    first.get("/health")
    first.get("/health")
    second.get("/health")
    one = value(
        samples(first.get("/metrics").text), "facer_http_requests_total", method="GET", route="/health", status="200"
    )
    two = value(
        samples(second.get("/metrics").text), "facer_http_requests_total", method="GET", route="/health", status="200"
    )
    assert (one, two) == (2, 1)


# -- JSON log lines ---------------------------------------------------------------------
def test_json_log_line_per_request_with_no_key_and_no_body(client_for, fake_engine, bundled_images, caplog):
    client = client_for(log_format="json", api_key=KEY)
    with caplog.at_level(logging.INFO, logger="facer.access"):
        answer = client.post(
            "/token/generate", files=[photo(bundled_images)], headers={"X-API-Key": KEY, "X-Request-ID": "door-7.42"}
        )
        refused = client.get("/users/alice", headers={"X-API-Key": "wrong-key-0123456789"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "door-7.42"
    assert refused.status_code == 401 and len(refused.headers["x-request-id"]) == 32
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "facer.access"]
    assert len(lines) == 2
    ok, bad = lines
    assert ok["event"] == "request" and ok["method"] == "POST" and ok["route"] == "/token/generate"
    assert ok["status"] == 200 and ok["duration_ms"] > 0 and ok["request_id"] == "door-7.42"
    assert ok["api_key"] == "api_key" and ok["client"] and ok["model_ms"] > 0
    assert ok["time"].endswith("Z") and ok["level"] == "info" and ok["logger"] == "facer.access"
    assert bad["route"] == "/users/{name}" and bad["status"] == 401 and bad["api_key"] is None
    assert bad["error"] == "AuthenticationError"
    text = json.dumps(lines)
    assert KEY not in text and "wrong-key" not in text and "alice" not in text and "token" not in ok


def test_text_logs_stay_as_they_were(client_for, fake_engine, caplog):
    client = client_for()
    with caplog.at_level(logging.INFO):
        client.get("/health")
    assert not [r for r in caplog.records if r.name == "facer.access"]


def test_json_formatter_escapes_what_a_request_sends():
    record = logging.LogRecord("facer.server", logging.INFO, __file__, 1, "user %s", ("a\nb\x1b[31m",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["message"] == "user a\nb\x1b[31m"


# -- a real process: SIGTERM drains ---------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multipart(data: bytes, boundary: str = "facerdrainboundary") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="yao.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def start_server(tmp_path: Path, **settings: str) -> tuple[subprocess.Popen, int]:
    """A real `facer serve` on a free port with these FACER_* settings, once /health answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    env.update(FACER_API_KEY=KEY, **settings)
    process = subprocess.Popen(
        [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db", str(tmp_path / "served.db")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    if process.poll() is not None:
        pytest.fail(f"facer serve exited {process.returncode}: {process.communicate()[0]}")
    return process, port


def slow_upload(port: int, bundled_images: Path) -> tuple[socket.socket, bytes]:
    """POST /token/generate with its headers and half its body sent: (the socket, the rest of the body)."""
    body, content_type = multipart((bundled_images / "yaoming.jpg").read_bytes())
    head = (
        f"POST /token/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    slow = socket.create_connection(("127.0.0.1", port), timeout=30)
    slow.sendall(head + body[: len(body) // 2])
    return slow, body[len(body) // 2 :]


@pytest.mark.slow
def test_sigterm_drains_the_request_in_flight_refuses_new_connections_and_exits_0(tmp_path, bundled_images):
    process, port = start_server(
        tmp_path, FACER_LOG_FORMAT="json", FACER_METRICS="true", FACER_SERVER_DRAIN_TIMEOUT_S="20"
    )
    try:
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"X-API-Key": KEY}, timeout=10)
        assert metrics.status_code == 200 and "facer_http_requests_total" in metrics.text

        # A slow upload: its headers and half its body, then SIGTERM, then the rest.
        slow, rest_of_body = slow_upload(port, bundled_images)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert process.poll() is None  # still draining
        slow.sendall(rest_of_body)
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        slow.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", answer[:300]
        # ... and the connection closed after it (recv saw its end): nothing more is read while draining.
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["token"]
        output, _ = process.communicate(timeout=25)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is JSON
    events = [line.get("event") for line in lines]
    assert events.index("start") < events.index("draining") < events.index("stopped")
    draining = lines[events.index("draining")]
    assert draining["signal"] == "SIGTERM" and draining["in_flight"] == 1
    drained = [line for line in lines if line.get("event") == "request" and line["route"] == "/token/generate"]
    assert len(drained) == 1 and drained[0]["status"] == 200 and drained[0]["api_key"] == "api_key"
    start = lines[events.index("start")]
    assert start["url"] == f"http://127.0.0.1:{port}" and start["metrics"] is True and KEY not in output


@pytest.mark.slow
def test_a_request_that_outlasts_the_drain_timeout_is_cancelled_and_the_process_still_exits_0(tmp_path, bundled_images):
    process, port = start_server(tmp_path, FACER_SERVER_DRAIN_TIMEOUT_S="1.5")
    try:
        slow, _ = slow_upload(port, bundled_images)  # the rest never comes (server_body_timeout_s is 30 s)
        time.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
        stopped_in = time.monotonic() - started
        try:
            leftover = slow.recv(65536)
        except ConnectionResetError:
            leftover = b""
        slow.close()
        assert not leftover.startswith(b"HTTP/1.1 200"), leftover[:200]  # cancelled: never answered as done
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert 1.0 < stopped_in < 10, stopped_in
    assert "SIGTERM: new connections refused; 1 request(s) in flight, given up to 1.5 s to finish" in output
