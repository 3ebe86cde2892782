"""The HTTP edge: slow and idle clients on a real uvicorn server on loopback, user names in URLs,
error bodies free of server paths and flags, a busy port, client disconnects, offline docs.

Every loop here is bounded in count and time, and every socket is closed at the end."""

from __future__ import annotations

import json
import logging
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("fastapi_offline")
httpx = pytest.importorskip("httpx")

from helpers import run  # noqa: E402

from facer_cli.errors import ModelPackError, StoreError  # noqa: E402
from facer_cli.server import create_app  # noqa: E402
from facer_cli.server.edge import build_server, serve_on  # noqa: E402
from facer_cli.server.errors import printable  # noqa: E402
from facer_cli.server.listen import ServeError, bind_socket  # noqa: E402
from facer_cli.settings import Settings  # noqa: E402

KEY = "k" * 12 + "-test-key-0123"


# -- a real server in a thread ------------------------------------------------------------
class LiveServer:
    def __init__(self, settings: Settings, engine):
        self.settings = settings
        self.sock = bind_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, engine=engine)
        self.server = build_server(app, settings, log_level="warning", configure_logging=False)  # pytest's capture
        self.thread = threading.Thread(target=serve_on, args=(self.server, self.sock), daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        assert self.server.started, "the server did not start within 60 s"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()

    def connect(self, timeout: float = 5) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    @property
    def facer(self):
        return self.server.config.loaded_app.app.state.facer.facer


@pytest.fixture
def live(tmp_path, engine):
    """live(**settings) → a LiveServer on 127.0.0.1 and a free port, stopped at the end."""
    with ExitStack() as stack:

        def make(**values) -> LiveServer:
            settings = Settings.from_values({"db": str(tmp_path / "facer.db"), **values})
            return stack.enter_context(LiveServer(settings, engine))

        yield make


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict, bytes]:
    """One HTTP response from a raw socket: status, headers, body (by Content-Length, else to EOF)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", -1))
    while (length < 0 or len(body) < length) and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def wait_closed(socks: list[socket.socket], within: float) -> tuple[dict[int, float], dict[int, bytes]]:
    """Which sockets the server closed within `within` seconds (index → seconds), and what each got first."""
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    for index, sock in enumerate(socks):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
    closed: dict[int, float] = {}
    received: dict[int, bytes] = {}
    try:
        while len(closed) < len(socks) and time.monotonic() - started < within:
            for key, _ in selector.select(timeout=0.2):
                index = key.data
                try:
                    chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                if chunk:
                    received[index] = received.get(index, b"") + chunk
                    continue
                closed[index] = time.monotonic() - started
                selector.unregister(key.fileobj)
    finally:
        selector.close()
    return closed, received


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


HALF_HEADER = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


# -- item 13: slow and idle clients ---------------------------------------------------------------
@pytest.mark.slow
def test_idle_and_half_header_connections_neither_block_requests_nor_stay_open(live, bundled_images):
    server = live(server_header_timeout_s=2)
    slow: list[socket.socket] = []
    try:
        for _ in range(60):
            slow.append(server.connect())  # idle: sends nothing
        for _ in range(60):
            sock = server.connect()
            sock.sendall(HALF_HEADER)
            slow.append(sock)
        time.sleep(0.2)
        with httpx.Client(base_url=server.base, timeout=10) as http:
            for _ in range(5):
                started = time.monotonic()
                assert http.get("/health").status_code == 200
                assert time.monotonic() - started < 2
            yao = (bundled_images / "yaoming.jpg").read_bytes()
            response = http.post("/token/generate", files=[("files", ("yao.jpg", yao, "image/jpeg"))])
            assert response.status_code == 200, response.text
        closed, received = wait_closed(slow, within=8)
        assert len(closed) == 120, f"{120 - len(closed)} slow connections still open after 8 s"
        assert max(closed.values()) < 2 + 2.5
        for index in range(60):  # idle ones: closed without a word
            assert index not in received
        for index in range(60, 120):  # half a header: a 408 in the JSON error body, then closed
            status_line, _, body = received[index].partition(b"\r\n")
            assert status_line.startswith(b"HTTP/1.1 408")
            assert error_of(body.partition(b"\r\n\r\n")[2])["type"] == "RequestTimeoutError"
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.slow
def test_the_connection_cap_closes_the_longest_idle_connection_first(live):
    server = live(server_max_connections=20, server_header_timeout_s=60)
    idle: list[socket.socket] = []
    try:
        for _ in range(50):
            idle.append(server.connect())
            time.sleep(0.005)
        with httpx.Client(base_url=server.base, timeout=10) as http:
            for _ in range(3):
                assert http.get("/health").status_code == 200
        closed, _ = wait_closed(idle, within=3)
        # Room was made for the newer ones by closing the oldest: at most 20 of them stay open.
        assert len(closed) >= 30
        assert min(closed) == 0 and max(set(range(50)) - set(closed), default=49) == 49
    finally:
        for sock in idle:
            sock.close()


def test_when_every_connection_is_busy_with_a_request_a_new_one_gets_a_json_503(live):
    server = live(server_max_connections=8, server_body_timeout_s=30)
    busy: list[socket.socket] = []
    try:
        for _ in range(8):  # headers complete, body still coming: not idle, never closed for room
            sock = server.connect()
            sock.sendall(
                b"POST /token/generate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 1000\r\n\r\n--b\r\n"
            )
            busy.append(sock)
        time.sleep(0.3)
        extra = server.connect()
        busy.append(extra)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(extra)
        assert status == 503 and headers["content-type"] == "application/json" and headers["retry-after"] == "1"
        assert error_of(body)["type"] == "ServerBusyError"
    finally:
        for sock in busy:
            sock.close()


@pytest.mark.slow
def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(live):
    server = live(server_body_timeout_s=1)
    sock = server.connect()
    try:
        started = time.monotonic()
        sock.sendall(
            b"POST /users/x/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\n"
        )
        status, headers, body = read_response(sock)
        assert status == 408 and headers["connection"] == "close"
        error = error_of(body)
        assert error["type"] == "RequestTimeoutError" and "server_body_timeout_s" in error["message"]
        assert 0.9 < time.monotonic() - started < 3
        closed, _ = wait_closed([sock], within=3)
        assert closed
    finally:
        sock.close()


@pytest.mark.slow
def test_a_trickled_body_the_app_never_reads_is_cut_off_too(live):
    server = live(server_body_timeout_s=1, api_key=KEY)
    sock = server.connect()
    try:  # 401 before the body is read; the body keeps trickling in, a byte at a time
        sock.sendall(b"POST /token/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        status, _, _ = read_response(sock)
        assert status == 401
        started = time.monotonic()
        cut = False
        for _ in range(40):
            try:
                sock.sendall(b"x")
            except OSError:
                cut = True
                break
            time.sleep(0.1)
            if wait_closed([sock], within=0.01)[0]:
                cut = True
                break
        assert cut and time.monotonic() - started < 3.5
    finally:
        sock.close()


@pytest.mark.slow
def test_keepalive_idle_connection_closes_and_a_stalled_second_request_gets_408(live):
    server = live(server_keepalive_s=1, server_header_timeout_s=1)
    first = server.connect()
    second = None
    try:
        first.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(first)[0] == 200
        closed, received = wait_closed([first], within=3)
        assert closed and 0.7 < closed[0] < 2.5 and not received

        second = server.connect()
        second.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(second)[0] == 200
        second.setblocking(True)
        second.sendall(HALF_HEADER)  # the next request on the same connection stalls
        status, _, body = read_response(second, timeout=5)
        assert status == 408 and error_of(body)["type"] == "RequestTimeoutError"
    finally:
        first.close()
        if second is not None:
            second.close()


def test_health_answers_while_every_model_slot_is_busy(live, bundled_images):
    server = live(server_concurrency=1, server_queue_size=0)
    release = threading.Event()
    facer = server.facer
    facer.capture = lambda frames: release.wait(20) and None  # holds the one slot
    yao = (bundled_images / "yaoming.jpg").read_bytes()
    statuses: list[int] = []

    def occupy() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            statuses.append(http.post("/token/generate", files=[("files", ("y.jpg", yao, "image/jpeg"))]).status_code)

    holder = threading.Thread(target=occupy)
    holder.start()
    try:
        with httpx.Client(base_url=server.base, timeout=10) as http:
            deadline = time.monotonic() + 20
            while http.get("/health").json()["models"]["running"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            started = time.monotonic()
            health = http.get("/health")
            assert health.status_code == 200 and health.json()["models"]["running"] == 1
            assert time.monotonic() - started < 1
            busy = http.post("/token/generate", files=[("files", ("y.jpg", yao, "image/jpeg"))])
            assert busy.status_code == 503 and busy.json()["error"]["type"] == "ServerBusyError"
    finally:
        release.set()
        holder.join(timeout=30)


def test_a_malformed_request_gets_the_json_error_body(live):
    server = live()
    for garbage in (b"NOT HTTP AT ALL\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
        sock = server.connect()
        try:
            sock.sendall(garbage)
            status, headers, body = read_response(sock)
            assert status == 400 and headers["content-type"] == "application/json"
            assert error_of(body)["type"] == "RequestError"
        finally:
            sock.close()


# -- item 18: a client that disconnects mid-upload --------------------------------------------------
@pytest.mark.slow
def test_a_client_that_disconnects_mid_upload_is_one_log_line(live, caplog):
    server = live()
    caplog.set_level(logging.INFO)
    for _ in range(3):
        sock = server.connect()
        sock.sendall(
            b"POST /users/alice/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 500000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * 20000
        )
        time.sleep(0.2)
        sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum("disconnected" in r.getMessage() for r in caplog.records) < 3:
        time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 3 and all("POST /users/alice/enroll" in line for line in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# -- item 17: a busy port ---------------------------------------------------------------------------
def test_a_busy_port_is_one_error_line_and_exit_12(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        started = time.monotonic()
        result = run("serve", "--port", port, "--db", tmp_path / "facer.db")
        assert result.exit_code == 12, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines == [f"error: cannot listen on 127.0.0.1:{port}: the port is in use by another program; "
                         "choose another --port (setting server_port) or --host, or stop the program that holds it"]
        assert time.monotonic() - started < 10  # before the models load
        with pytest.raises(ServeError, match="in use"):
            bind_socket("127.0.0.1", port)
    finally:
        holder.close()


def test_a_busy_port_as_a_real_process_exits_12_without_uvicorn_lines(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db", str(tmp_path / "x.db")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
    finally:
        holder.close()
    assert done.returncode == 12, done.stderr
    assert done.stderr.count("error:") == 1 and "INFO:" not in done.stderr and "ERROR:" not in done.stderr
    assert "address already in use" not in done.stderr


def test_an_address_that_is_not_this_machines_is_a_serve_error():
    with pytest.raises(ServeError, match="not an address of this machine"):
        bind_socket("192.0.2.1", 0)  # TEST-NET-1: never local


# -- item 20: log lines ------------------------------------------------------------------------------
def test_log_text_escapes_control_format_and_separator_characters():
    assert printable("alice") == "alice"
    assert printable("Zoë 李") == "Zoë 李"
    assert printable("a\nINFO: forged") == "a\\nINFO: forged"
    assert printable("x\x1b[31mred") == "x\\x1b[31mred"
    assert printable("rtl\u202eevil") == "rtl\\u202eevil"
    assert printable("a\u2028b\u00a0c") == "a\\u2028b\\xa0c"
    assert printable("back\\slash") == "back\\\\slash"
    assert printable("x" * 400).endswith("…") and len(printable("x" * 400)) == 301


# -- item 19: /docs with no network ---------------------------------------------------------------------
def test_docs_pages_load_their_assets_from_this_server(client_for):
    client = client_for(api_key=KEY)
    for page, assets in [("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]), ("/redoc", ["redoc.standalone.js"])]:
        html = client.get(page).text
        assert "cdn." not in html and "googleapis" not in html and "https://" not in html.replace(
            "https://fastapi.tiangolo.com", ""
        )
        for asset in assets:
            assert f"/docs-assets/{asset}" in html
            response = client.get(f"/docs-assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 100_000
    assert client.get("/docs-assets/favicon.png").status_code == 200


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_docs_render_in_a_headless_browser_with_every_other_host_unreachable(live, tmp_path):
    server = live()

    def dom(page: str) -> str:
        profile = tmp_path / f"profile{page.replace('/', '-')}"
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing else resolves
             "--virtual-time-budget=15000", "--dump-dom", f"{server.base}{page}"],
            capture_output=True, text=True, timeout=120,
        )
        return done.stdout

    swagger = dom("/docs")
    assert "opblock" in swagger and "/token/generate" in swagger and "/users/{name}/enroll" in swagger
    redoc = dom("/redoc")
    assert "Enroll a person from images" in redoc and "redoc-wrap" in redoc


# -- item 15: user names in URLs --------------------------------------------------------------------
def photo_files(path: Path, count: int, field: str = "files") -> list:
    return [(field, (f"{path.stem}_{i}.jpg", path.read_bytes(), "image/jpeg")) for i in range(count)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a/b", "team/alice/2", "50%", "who?", "x#y", "Zoë Ødegård", "../etc", "<b>bold</b>"])
def test_every_valid_name_is_reachable_percent_encoded(client_for, bundled_images, tmp_path, name):
    from urllib.parse import quote

    client = client_for()
    url = "/users/" + quote(name, safe="")
    enrolled = client.post(f"{url}/enroll", files=photo_files(bundled_images / "yaoming.jpg", 3))
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["user"] == name  # as it is: JSON escaping suffices
    assert [u["name"] for u in client.get("/users").json()["users"]] == [name]
    assert client.get(url).json()["name"] == name
    verified = client.post(f"{url}/verify", files=photo_files(bundled_images / "yaoming.jpg", 1))
    assert verified.status_code == 200 and verified.json()["band"] == "match"
    shown = run("users", "show", name, "--db", tmp_path / "facer.db")  # the CLI sees the same user
    assert shown.exit_code == 0, shown.output
    assert client.delete(url).json()["user"] == name


def test_a_slash_left_unencoded_is_not_a_name(client_for):
    client = client_for()
    response = client.get("/users/a/b")
    assert response.status_code == 404 and response.json()["error"]["type"] == "NotFound"


@pytest.mark.parametrize("path", ["/users/%FF", "/users/%FF/enroll", "/users/caf%C3/verify", "/users/%ED%A0%80",
                                  "/nope%FF", "/health%FE"])
def test_a_path_that_is_not_utf8_is_400_never_a_replacement_character(client_for, path):
    client = client_for()
    method = "post" if path.endswith(("enroll", "verify")) else "get"
    response = client.request(method, path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "RequestError" and "not UTF-8" in error["message"]
    assert client.get("/users").json()["users"] == []


@pytest.mark.parametrize("encoded, code", [("ali%E2%80%AEce", "U+202E"), ("bob%E2%80%8B", "U+200B"),
                                           ("%EF%BB%BFcarol", "U+FEFF"), ("dan%E2%81%A6", "U+2066")])
def test_invisible_and_direction_characters_are_refused_over_http(client_for, bundled_images, encoded, code):
    client = client_for()
    response = client.post(f"/users/{encoded}/enroll", files=photo_files(bundled_images / "yaoming.jpg", 3))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "UserNameError" and code in error["message"]
    assert client.get("/users").json()["users"] == []


# -- item 14: `file` and `files` on every upload endpoint ------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("field", ["file", "files"])
def test_every_upload_endpoint_takes_file_and_files(client_for, bundled_images, field):
    client = client_for()
    yao = bundled_images / "yaoming.jpg"
    token = client.post("/token/generate", files=photo_files(yao, 1, field))
    assert token.status_code == 200 and token.json()["template"]["frames_used"] == 1, token.text
    enrolled = client.post("/users/yao/enroll", files=photo_files(yao, 3, field))
    assert enrolled.status_code == 201 and enrolled.json()["template"]["frames_used"] == 3, enrolled.text
    verified = client.post("/users/yao/verify", files=photo_files(yao, 1, field))
    assert verified.status_code == 200 and verified.json()["band"] == "match", verified.text
    added = client.post("/users/yao/enroll?mode=add", files=photo_files(yao, 3, field))
    assert added.status_code == 201


# -- item 16: error bodies hold no server path and no CLI flag --------------------------------------------
def assert_clean(response, status: int, *secrets: str) -> dict:
    assert response.status_code == status, response.text
    text = response.text
    for secret in ("--", "/tmp", *secrets):
        assert secret not in text, f"{status} body holds {secret!r}: {text}"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "status", "message"}
    assert body["error"]["status"] == status
    return body["error"]


def test_no_error_body_holds_a_server_path_or_a_cli_flag(client_for, bundled_images, tmp_path, monkeypatch):
    db = str(tmp_path / "facer.db")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    client = client_for(max_request_bytes=200_000, max_files_per_request=4)
    yao = bundled_images / "yaoming.jpg"
    one = photo_files(yao, 1)
    blank = ("files", ("wall.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 100, "image/jpeg"))

    assert_clean(client.post("/token/generate", files=[blank]), 400, db)  # unreadable image
    assert_clean(client.post("/users/%20/enroll", files=one), 400, db)  # bad name
    assert_clean(client.get("/users/x?attempts=-1"), 400, db)  # validation error
    assert_clean(client.post("/users/x/enroll?mode=merge", files=one), 400, db)
    assert_clean(client.get("/users/%FF"), 400, db)  # not UTF-8
    assert_clean(client.post("/compare", files=[("a", ("a.npy", b"\x93NUMPY junk", "application/octet-stream"))]), 400, db)
    assert_clean(client_for(api_key=KEY).get("/users"), 401, db)
    remote = TestClient(create_app(Settings(db=db), engine=client.app.state.facer.facer.engine), base_url="http://10.1.2.3")
    with remote:
        assert_clean(remote.get("/users"), 403, db)
    assert_clean(client.get("/users/nobody"), 404, db)
    assert_clean(client.get("/no/such/endpoint"), 404, db)
    assert_clean(client.put("/users"), 405, db)
    assert client.post("/users/yao/enroll", files=photo_files(yao, 3)).status_code == 201
    assert_clean(client.post("/users/yao/enroll", files=photo_files(yao, 3)), 409, db)
    big = ("files", ("big.jpg", b"\0" * 250_000, "image/jpeg"))
    assert_clean(client.post("/token/generate", files=[big]), 413, db)
    assert_clean(client.post("/token/generate", files=photo_files(yao, 5)), 413, db)
    assert_clean(client.post("/token/generate", files=[("files", ("t.txt", b"hi", "text/plain"))]), 415, db)
    assert_clean(client.post("/users/nobody2/enroll", files=one), 422, db)

    facer = client.app.state.facer.facer
    monkeypatch.setattr(facer, "users", lambda: (_ for _ in ()).throw(RuntimeError(f"boom in {db} --debug")))
    error = assert_clean(client.get("/users"), 500, db)
    assert error["type"] == "InternalError"
    monkeypatch.setattr(facer, "users", lambda: (_ for _ in ()).throw(
        ModelPackError("model pack missing at /tmp/models; pass --model or pip install --force-reinstall x")))
    error = assert_clean(client.get("/users"), 500, "models")
    assert error["type"] == "ModelPackError"
    monkeypatch.setattr(facer, "users", lambda: (_ for _ in ()).throw(StoreError("{db} is locked", path=db)))
    error = assert_clean(client.get("/users"), 503, db)
    assert "the database is locked" in error["message"]


@pytest.mark.slow
def test_no_uvicorn_level_error_body_holds_a_server_path_or_a_flag(live, tmp_path):
    server = live(server_body_timeout_s=1)
    db = str(tmp_path / "facer.db")
    checks = [
        (b"NOT HTTP\r\n\r\n", 400),
        (b"POST /users/x/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
         b"Content-Length: 10\r\n\r\n--", 408),
    ]
    for request, status in checks:
        sock = server.connect()
        try:
            sock.sendall(request)
            got, _, body = read_response(sock)
            assert got == status
            text = body.decode()
            assert db not in text and "--" not in text and "/tmp" not in text
            assert set(json.loads(text)["error"]) == {"type", "status", "message"}
        finally:
            sock.close()


def test_accepted_connections_send_small_responses_at_once(live):
    """TCP_NODELAY on every accepted socket (asyncio sets it only for sockets made as IPPROTO_TCP):
    without it each small response waited ~40 ms for the client's delayed ACK."""
    server = live()
    assert server.sock.proto == socket.IPPROTO_TCP
    with httpx.Client(base_url=server.base, timeout=10) as http:
        assert http.get("/health").status_code == 200
        (connection,) = list(server.server.server_state.connections)
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_server_whose_startup_fails_is_a_serve_error_not_uvicorns_exit_3():
    async def failing(scope, receive, send):
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "models missing"})

    server = build_server(failing, Settings(), log_level="critical", configure_logging=False)
    sock = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(ServeError, match="did not start"):
            serve_on(server, sock)
    finally:
        sock.close()


def test_uploads_in_flight_are_bounded_and_requests_without_a_body_never_counted():
    import asyncio

    from facer_cli.server.uploads import BodyLimitMiddleware

    async def scenario() -> None:
        gate = asyncio.Event()

        async def app(scope, receive, send):
            await receive()
            if scope["method"] == "POST":
                await gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        guarded = BodyLimitMiddleware(app, max_bytes=1000, timeout_s=5, max_bodies=2)

        def scope(method: str, body: bool) -> dict:
            headers = [(b"content-length", b"3")] if body else []
            return {"type": "http", "method": method, "path": "/", "headers": headers}

        async def call(method: str, body: bool) -> int:
            sent: list[dict] = []

            async def receive():
                return {"type": "http.request", "body": b"abc" if body else b"", "more_body": False}

            async def send(message):
                sent.append(message)

            await guarded(scope(method, body), receive, send)
            return sent[0]["status"]

        held = [asyncio.create_task(call("POST", True)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert guarded.bodies == 2
        assert await call("POST", True) == 503  # a third upload: refused at once
        assert await call("GET", False) == 200  # /health and the like: never counted, never refused
        gate.set()
        assert [await task for task in held] == [200, 200]
        assert guarded.bodies == 0
        assert await call("POST", True) == 200

    asyncio.run(scenario())
