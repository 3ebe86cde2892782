"""`facer serve`: every endpoint through FastAPI's test client on real photos, bad uploads,
the API key, limits, bounded concurrency, and one real server process on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
httpx = pytest.importorskip("httpx")

with warnings.catch_warnings():  # Starlette's notice that its TestClient will move from httpx to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from helpers import one_face_photo  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from facer_cli.cli import app as cli_app  # noqa: E402
from facer_cli.errors import ConfigError  # noqa: E402
from facer_cli.server.errors import ServerBusyError  # noqa: E402
from facer_cli.server.exposure import ExposureError, check_exposure, is_loopback  # noqa: E402
from facer_cli.server.gate import ModelGate  # noqa: E402
from facer_cli.settings import load_settings  # noqa: E402
from facer_cli.store import Store  # noqa: E402

KEY = "k" * 12 + "-test-key-0123"


@pytest.fixture
def client(client_for) -> TestClient:
    return client_for()


def part(path: Path, field: str = "files", content_type: str = "image/jpeg", name: str | None = None):
    return (field, (name or path.name, path.read_bytes(), content_type))


def raw(data: bytes, name: str = "x.jpg", content_type: str = "image/jpeg", field: str = "files"):
    return (field, (name, data, content_type))


def assert_error(response, status: int, type_name: str, match: str = "") -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_name and error["status"] == status
    assert match.lower() in error["message"].lower(), error["message"]
    return error


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels, with a tiny (invalid) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# -- health and docs -------------------------------------------------------------
def test_health_reports_model_provider_fingerprint_and_size(client, engine):
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["model"] == "bundled" and body["fingerprint"] == engine.fingerprint
    assert body["provider"] == "CPUExecutionProvider" and body["acceleration"] is False
    assert body["det_size"] == 320
    assert body["models"]["slots"] == 2 and body["models"]["running"] == 0


def test_openapi_docs_are_served_and_list_every_endpoint(client, fake_engine):
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/health", "get"), ("/token/generate", "post"), ("/compare", "post"), ("/users", "get"),
        ("/users/{name}", "get"), ("/users/{name}", "delete"), ("/users/{name}/enroll", "post"),
        ("/users/{name}/verify", "post"),
    ]:
        assert method in paths[path], (path, method)
    body = paths["/token/generate"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["files"]["items"]["format"] == "binary"
    assert "422" in paths["/users/{name}/enroll"]["post"]["responses"]
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_unknown_endpoint_and_method_have_the_json_error_body(client, fake_engine):
    assert_error(client.get("/nope"), 404, "NotFound", "no endpoint GET /nope")
    assert_error(client.get("/token/generate"), 405, "MethodNotAllowed")


# -- /token/generate ---------------------------------------------------------------
def test_token_from_one_photo_is_a_unit_vector_with_its_frame_report(client, bundled_images, fake_engine):
    response = client.post("/token/generate", files=[part(bundled_images / "yaoming.jpg")])
    assert response.status_code == 200, response.text
    body = response.json()
    token = np.array(body["token"], np.float32)
    assert token.shape == (512,) and abs(np.linalg.norm(token) - 1) < 1e-5
    assert body["model"] == fake_engine.fingerprint
    assert body["template"]["frames_used"] == 1 and body["template"]["kept"] == ["yaoming.jpg"]
    (frame,) = body["frames"]
    assert frame["source"] == "yaoming.jpg" and frame["accepted"] is True and frame["faces_found"] == 1
    # The same vector as the engine gives for the file on disk.
    direct = fake_engine.analyze_path(bundled_images / "yaoming.jpg").embedding
    assert float(token @ direct) > 0.9999


def test_token_from_several_photos_of_one_person_matches_their_other_photo(client, faces, engine):
    obama = faces / "people" / "obama"
    files = [part(obama / f"obama_{i}.jpg") for i in (1, 2, 3)]
    body = client.post("/token/generate", files=files).json()
    assert body["template"]["frames_used"] == 3 and len(body["frames"]) == 3
    token = np.array(body["token"], np.float32)
    assert float(token @ engine.analyze_path(obama / "obama_4.jpg").embedding) >= 0.4
    assert float(token @ engine.analyze_path(faces / "people" / "biden" / "biden_1.jpg").embedding) < 0.3


def test_token_with_no_face_is_422_with_the_reason(client, fake_engine):
    blank = jpeg(np.full((240, 320, 3), 128, np.uint8))
    error = assert_error(client.post("/token/generate", files=[raw(blank, "wall.jpg")]), 422, "TooFewFramesError")
    assert "wall.jpg (no face)" in error["message"]


# -- bad uploads --------------------------------------------------------------------
def test_text_file_declared_as_text_is_415_and_as_an_image_is_400(client, fake_engine):
    assert_error(
        client.post("/token/generate", files=[raw(b"hello\n", "notes.txt", "text/plain")]),
        415, "UnsupportedMediaError", "notes.txt: declared as text/plain",
    )
    assert_error(
        client.post("/token/generate", files=[raw(b"hello\n", "notes.jpg", "image/jpeg")]),
        400, "ImageError", "notes.jpg: not an image facer can decode",
    )


def test_truncated_jpeg_and_zero_bytes_are_400_naming_the_file(client, bundled_images, fake_engine):
    data = (bundled_images / "yaoming.jpg").read_bytes()
    assert_error(
        client.post("/token/generate", files=[raw(data[: len(data) // 2], "cut.jpg")]),
        400, "ImageError", "cut.jpg: truncated image",
    )
    assert_error(client.post("/token/generate", files=[raw(b"", "zero.jpg")]), 400, "ImageError", "zero.jpg: empty file")


def test_one_bad_file_among_good_ones_fails_the_request(client, bundled_images, fake_engine):
    files = [part(bundled_images / "yaoming.jpg"), raw(b"", "zero.jpg")]
    assert_error(client.post("/token/generate", files=files), 400, "ImageError", "zero.jpg")


def test_pixel_bomb_is_413_from_its_header(client, fake_engine):
    bomb = png_header_bomb(60_000, 60_000)
    assert len(bomb) < 200
    assert_error(
        client.post("/token/generate", files=[raw(bomb, "bomb.png", "image/png")]),
        413, "ImageTooLargeError", "bomb.png: 60000×60000",
    )


def test_image_over_a_lower_pixel_limit_is_413(client_for, bundled_images, fake_engine):
    client = client_for(max_image_pixels=10_000)
    assert_error(
        client.post("/token/generate", files=[part(bundled_images / "yaoming.jpg")]),
        413, "ImageTooLargeError", "max_image_pixels",
    )


def test_body_over_the_limit_is_413_by_content_length_and_by_streamed_size(client_for, bundled_images, fake_engine):
    client = client_for(max_request_bytes=20_000)
    big = (bundled_images / "players.jpg").read_bytes()
    assert len(big) > 20_000
    assert_error(client.post("/token/generate", files=[raw(big)]), 413, "RequestTooLargeError", "max_request_bytes")

    def chunks():  # no Content-Length: the size is counted as the body streams in
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    response = client.post("/token/generate", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "RequestTooLargeError", "max_request_bytes")


def test_too_many_files_is_413(client_for, bundled_images, fake_engine):
    client = client_for(max_files_per_request=2)
    files = [part(bundled_images / "yaoming.jpg")] * 3
    assert_error(client.post("/token/generate", files=files), 413, "TooManyFilesError", "at most 2")


def test_missing_field_not_multipart_and_text_instead_of_file(client, bundled_images, fake_engine):
    assert_error(client.post("/token/generate", files=[part(bundled_images / "yaoming.jpg", field="image")]), 400, "RequestError", "no file in field 'files'")
    assert_error(client.post("/token/generate", json={"files": []}), 415, "UnsupportedMediaError", "multipart/form-data")
    assert_error(client.post("/token/generate"), 415, "UnsupportedMediaError", "no Content-Type")
    assert_error(
        client.post("/token/generate", files={"other": ("a", b"1", "image/jpeg")}, data={"files": "yaoming.jpg"}),
        400, "RequestError", "holds text, not a file",
    )
    response = client.post("/token/generate", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"})
    assert_error(response, 400, "RequestError")


def test_uploads_never_touch_the_disk(client, bundled_images, monkeypatch, fake_engine):
    image = cv2.imread(str(bundled_images / "yaoming.jpg"))
    image = cv2.resize(image, None, fx=4, fy=4)
    noise = np.random.default_rng(0).integers(0, 16, image.shape, dtype=np.uint8)  # defeats compression
    big = cv2.imencode(".png", cv2.add(image, noise))[1].tobytes()
    assert len(big) > 1.5 * 1024 * 1024  # over Starlette's 1 MB spool: it would roll over to a temporary file

    def refuse(*args, **kwargs):
        raise AssertionError("an upload was written to a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    response = client.post("/token/generate", files=[raw(big, "big.png", "image/png")])
    assert response.status_code == 200, response.text


# -- /compare -----------------------------------------------------------------------
def test_compare_two_images_and_a_npy_template(client, bundled_images, fake_engine, tmp_path):
    yao, other = bundled_images / "yaoming.jpg", one_face_photo(bundled_images, tmp_path)
    body = client.post("/compare", files=[part(yao, "a"), part(other, "b")]).json()
    assert body["a"] == "yaoming.jpg" and body["band"] == "no_match" and len(body["frames"]) == 2
    vector = io.BytesIO()
    np.save(vector, fake_engine.analyze_path(yao).embedding)
    body = client.post(
        "/compare", files=[part(yao, "a"), ("b", ("yao.npy", vector.getvalue(), "application/octet-stream"))]
    ).json()
    assert body["band"] == "match" and body["similarity"] > 0.9999 and len(body["frames"]) == 1


def test_compare_errors_no_face_bad_npy_missing_field(client, bundled_images, fake_engine):
    yao = bundled_images / "yaoming.jpg"
    blank = jpeg(np.full((240, 320, 3), 128, np.uint8))
    assert_error(client.post("/compare", files=[part(yao, "a"), raw(blank, "wall.jpg", field="b")]), 400, "NoFaceError", "wall.jpg: no usable face")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_error(
        client.post("/compare", files=[part(yao, "a"), ("b", ("evil.npy", pickled.getvalue(), "application/octet-stream"))]),
        400, "VectorError", "pickled",
    )
    assert_error(client.post("/compare", files=[part(yao, "a")]), 400, "RequestError", "field 'b'")


# -- users ----------------------------------------------------------------------------
@pytest.mark.slow
def test_enroll_verify_list_show_remove_with_real_photos(client, faces):
    obama, biden = faces / "people" / "obama", faces / "people" / "biden"
    enroll_files = [part(obama / f"obama_{i}.jpg") for i in (1, 2, 3)]
    response = client.post("/users/obama/enroll", files=enroll_files)
    assert response.status_code == 201, response.text
    enrolled = response.json()
    assert enrolled["user"] == "obama" and enrolled["mode"] == "new" and enrolled["template"]["frames_used"] == 3
    assert enrolled["source"] == "uploaded images: obama_1.jpg, obama_2.jpg, obama_3.jpg"

    assert_error(client.post("/users/obama/enroll", files=enroll_files), 409, "UserExistsError", "already enrolled")
    added = client.post("/users/obama/enroll?mode=add", files=enroll_files[:3])
    assert added.status_code == 201 and added.json()["mode"] == "add"

    match = client.post("/users/obama/verify", files=[part(obama / "obama_4.jpg")]).json()
    assert match["band"] == "match" and match["similarity"] >= 0.4 and match["templates_compared"] == 2
    other = client.post("/users/obama/verify", files=[part(biden / "biden_1.jpg")]).json()
    assert other["band"] == "no_match"

    users = client.get("/users").json()["users"]
    assert [u["name"] for u in users] == ["obama"] and users[0]["templates"] == 2
    shown = client.get("/users/obama").json()
    assert len(shown["template_list"]) == 2 and len(shown["recent_attempts"]) == 2
    assert len(client.get("/users/obama?attempts=1").json()["recent_attempts"]) == 1

    removed = client.delete("/users/obama").json()
    assert removed == {"user": "obama", "templates": 2, "samples": 6, "erasure_pending": False}
    assert_error(client.get("/users/obama"), 404, "UnknownUserError")
    assert_error(client.delete("/users/obama"), 404, "UnknownUserError")
    assert client.get("/users").json()["users"] == []


def test_users_errors_unknown_user_too_few_frames_bad_name_bad_mode(client, bundled_images, fake_engine):
    yao = part(bundled_images / "yaoming.jpg")
    assert_error(client.post("/users/nobody/verify", files=[yao]), 404, "UnknownUserError", "nobody")
    error = assert_error(client.post("/users/yao/enroll", files=[yao]), 422, "TooFewFramesError", "need 3")
    assert "1 of 1" in error["message"]
    assert client.get("/users").json()["users"] == []  # nothing written
    assert_error(client.post("/users/%20/enroll", files=[yao]), 400, "UserNameError", "empty")
    assert_error(client.post("/users/yao/enroll?mode=merge", files=[yao]), 400, "RequestError", "mode")
    assert_error(client.get("/users/yao?attempts=-1"), 400, "RequestError", "attempts")


def test_verify_against_another_models_template_is_409(client, bundled_images, tmp_path, fake_engine):
    with Store(tmp_path / "facer.db") as store:
        store.import_vector("old", np.ones(512, np.float32), model="buffalo_l:0123456789abcdef", source="test")
    error = assert_error(
        client.post("/users/old/verify", files=[part(bundled_images / "yaoming.jpg")]), 409, "ModelMismatchError", "buffalo_l"
    )
    assert "re-enroll" in error["message"]


def test_http_json_is_the_cli_json(client, bundled_images, tmp_path, fake_engine):
    """The same library functions: enroll by HTTP, verify by the CLI and by HTTP, same fields and figures."""
    yao = bundled_images / "yaoming.jpg"
    flipped = tmp_path / "yao_flipped.jpg"
    cv2.imwrite(str(flipped), cv2.flip(cv2.imread(str(yao)), 1))
    files = [part(yao), part(flipped), part(yao, name="yao_again.jpg")]
    enrolled = client.post("/users/yao/enroll", files=files)
    assert enrolled.status_code == 201, enrolled.text

    db = tmp_path / "facer.db"
    cli = CliRunner().invoke(cli_app, ["verify", "yao", str(yao), "--db", str(db), "--json"])
    assert cli.exit_code == 0, cli.output
    by_cli = json.loads(cli.stdout)
    by_http = client.post("/users/yao/verify", files=[part(yao)]).json()
    assert set(by_http) == set(by_cli)
    assert set(by_http["probe"]) == set(by_cli["probe"])
    assert set(by_http["frames"][0]) == set(by_cli["frames"][0])
    assert by_http["similarity"] == by_cli["similarity"] and by_http["band"] == by_cli["band"] == "match"
    assert by_http["attempt_id"] == by_cli["attempt_id"] + 1  # one audit log

    cli_enroll = CliRunner().invoke(cli_app, ["enroll", "yao2", str(yao), str(flipped), str(yao), "--db", str(db), "--json",
                                                "--allow-lookalike"])  # the same face: a look-alike of yao
    assert cli_enroll.exit_code == 0, cli_enroll.output
    assert set(json.loads(cli_enroll.stdout)) == set(enrolled.json())


# -- access ----------------------------------------------------------------------------
def test_api_key_is_required_everywhere_but_health(client_for, bundled_images, fake_engine):
    client = client_for(api_key=KEY)
    assert client.get("/health").json()["api_key_required"] is True
    for method, path in [("get", "/users"), ("get", "/users/x"), ("delete", "/users/x"), ("post", "/token/generate"),
                         ("post", "/compare"), ("post", "/users/x/enroll"), ("post", "/users/x/verify"),
                         ("post", "/identify")]:
        response = client.request(method, path)
        assert_error(response, 401, "AuthenticationError", "missing X-API-Key")
        assert "X-API-Key" in response.headers["www-authenticate"]
    assert_error(client.get("/users", headers={"X-API-Key": KEY[:-1] + "!"}), 401, "AuthenticationError", "wrong API key")
    assert client.get("/users", headers={"X-API-Key": KEY}).status_code == 200
    response = client.post("/token/generate", files=[part(bundled_images / "yaoming.jpg")], headers={"X-API-Key": KEY})
    assert response.status_code == 200


def test_api_key_setting_is_validated():
    with pytest.raises(ConfigError, match="api_key.*at least 16"):
        load_settings(overrides={"api_key": "short"}, environ={})
    with pytest.raises(ConfigError, match="api_key.*printable ASCII"):
        load_settings(overrides={"api_key": "a key with spaces in it"}, environ={})
    with pytest.raises(ConfigError, match="server_port.*65535"):
        load_settings(overrides={"server_port": 70000}, environ={})
    assert load_settings(environ={"FACER_API_KEY": KEY}).settings.api_key == KEY


def test_non_loopback_without_a_key_is_refused_unless_said_insecure():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::") and not is_loopback("example.com")
    check_exposure("127.0.0.1", False, False)
    check_exposure("0.0.0.0", True, False)
    check_exposure("0.0.0.0", False, True)
    with pytest.raises(ExposureError, match="refusing to listen on 0.0.0.0 without an API key"):
        check_exposure("0.0.0.0", False, False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output and "--allow-insecure-remote" in result.output


def test_serve_without_the_server_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == 2
    assert "pip install 'facer[server]'" in result.output and "uvicorn" in result.output


# -- bounded concurrency ------------------------------------------------------------------
def test_model_gate_runs_at_most_its_slots_queues_then_refuses():
    release = threading.Event()

    async def scenario():
        gate = ModelGate(slots=1, queue_size=1, timeout_s=5)
        first = asyncio.create_task(gate.run(release.wait))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(gate.run(lambda: "second"))
        await asyncio.sleep(0.05)
        assert (gate.running, gate.waiting) == (1, 1)
        with pytest.raises(ServerBusyError, match="1 waiting"):
            await gate.run(lambda: "third")
        release.set()
        assert await first is True and await second == "second"
        assert (gate.running, gate.waiting, gate.refused) == (0, 0, 1)

        slow = ModelGate(slots=1, queue_size=4, timeout_s=0.1)
        blocker = threading.Event()
        held = asyncio.create_task(slow.run(blocker.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(ServerBusyError, match="within 0.1 s"):
            await slow.run(lambda: None)
        blocker.set()
        await held

    asyncio.run(scenario())


def test_requests_beyond_the_bound_get_503_and_the_service_goes_on(client_for, bundled_images):
    # A slow request: eight photos of one person (a group photo would now be refused with 422).
    client = client_for(server_concurrency=1, server_queue_size=0)
    files = [part(bundled_images / "yaoming.jpg")] * 8
    statuses = []

    def post():
        statuses.append(client.post("/token/generate", files=files).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    busy = client.get("/health").json()["models"]
    assert busy["running"] == 0 and busy["refused"] == statuses.count(503)
    assert client.post("/token/generate", files=[part(bundled_images / "yaoming.jpg")]).status_code == 200


# -- a real server process ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_real_facer_serve_process_enrolls_and_verifies(tmp_path, bundled_images):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    env["FACER_API_KEY"] = KEY
    process = subprocess.Popen(
        [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db", str(tmp_path / "served.db"), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, f"no /health within 90 s; exit {process.poll()}"
        assert health["status"] == "healthy" and health["det_size"] == 320

        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as http:
            yao = bundled_images / "yaoming.jpg"
            files = [("files", (f"yao_{i}.jpg", yao.read_bytes(), "image/jpeg")) for i in range(3)]
            enrolled = http.post("/users/yao/enroll", files=files)
            assert enrolled.status_code == 201, enrolled.text
            verified = http.post("/users/yao/verify", files=[("files", ("probe.jpg", yao.read_bytes(), "image/jpeg"))])
            assert verified.status_code == 200 and verified.json()["band"] == "match"
            gdp = one_face_photo(bundled_images, tmp_path)
            other = http.post("/users/yao/verify", files=[("files", ("gdp.jpg", gdp.read_bytes(), "image/jpeg"))])
            assert other.json()["band"] == "no_match"
            assert httpx.get(f"{base}/users").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert "facer serve: model bundled:" in output
