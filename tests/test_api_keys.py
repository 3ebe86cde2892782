"""Named, scoped API keys: kiosk keys verify and identify only, admin keys do everything; every
route is mapped to a scope; keys are added and revoked while the server runs, stored hashed, and
the logs record which key made each request; the api_key setting stays an admin key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facer_cli.cli import app as cli_app
from facer_cli.errors import ApiKeyError
from facer_cli.server.scopes import ROUTE_SCOPES, scope_for
from facer_cli.service.keys import (
    SETTINGS_KEY,
    ApiKeys,
    KeyRing,
    allows,
    hash_token,
    name_in,
    new_token,
    stored_keys_active,
    token_matches,
)
from facer_cli.settings import Settings
from facer_cli.store import AttemptRecord, IdentifyRecord
from facer_cli.store.contract import open_store
from facer_cli.store.records import ACTING_KEY

LEGACY = "k" * 12 + "-test-key-0123"


def walk(routes, found=None) -> set[tuple[str, str]]:
    """(method, path) of every endpoint of an app, through the routers it includes."""
    found = set() if found is None else found
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            walk(original.routes, found)
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def images(bundled_images: Path, count: int = 3) -> list:
    return [("files", ("y.jpg", (bundled_images / "yaoming.jpg").read_bytes(), "image/jpeg"))] * count


def headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"X-API-Key": token}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- tokens and hashes ------------------------------------------------------------------
def test_tokens_name_their_key_and_only_their_hash_matches():
    token = new_token("door-1")
    assert token.startswith("facer_door-1_") and name_in(token) == "door-1"
    assert name_in(new_token("a_b")) == "a_b"
    assert name_in("facer_x") is None and name_in("not-a-facer-token" * 4) is None
    stored = hash_token(token)
    method, salt, digest = stored.split("$")
    assert method == "sha256" and len(bytes.fromhex(salt)) == 16 and len(digest) == 64
    assert token not in stored and token.split("_")[-1] not in stored
    assert token_matches(token, stored) and not token_matches(token[:-1] + "x", stored)
    assert hash_token(token) != stored  # salted
    assert not token_matches(token, "md5$00$00") and not token_matches(token, "garbage")
    assert allows("admin", "kiosk") and allows("admin", "admin") and allows("kiosk", "kiosk")
    assert not allows("kiosk", "admin") and not allows("nonsense", "kiosk")


# -- the store, on both backends ---------------------------------------------------------
@pytest.mark.slow
def test_keys_in_the_store_and_the_key_names_in_the_logs(backend_db):
    settings = Settings(db=backend_db)
    keys = ApiKeys(settings)
    door = keys.add("door-1", "kiosk")
    assert door.key.scope == "kiosk" and door.key.active and name_in(door.token) == "door-1"
    with pytest.raises(ApiKeyError, match="already named 'door-1'"):
        keys.add("door-1", "admin")
    for bad in ("", "-x", "a b", "x" * 65, SETTINGS_KEY):
        with pytest.raises(ApiKeyError):
            keys.add(bad, "kiosk")
    with pytest.raises(ApiKeyError, match="scope"):
        keys.add("door-2", "root")
    keys.add("hq", "admin")
    listed = keys.list()
    assert [(k.name, k.scope, k.active) for k in listed.keys] == [("door-1", "kiosk", True), ("hq", "admin", True)]
    shown = json.dumps(listed.to_dict())
    assert door.token not in shown and "sha256$" not in shown and "key_hash" not in shown
    revoked = keys.revoke("door-1")
    assert revoked.revoked is not None
    with pytest.raises(ApiKeyError, match="no active API key"):
        keys.revoke("door-1")
    again = keys.add("door-1", "kiosk")  # the name is free again; the revoked row stays
    assert [(k.name, k.active) for k in keys.list().keys] == [("door-1", False), ("door-1", True), ("hq", True)]
    with open_store(settings, "read") as store:
        active = store.active_api_key("door-1")
        assert active is not None and token_matches(again.token, active.key_hash)
        assert not token_matches(door.token, active.key_hash)
        assert store.active_api_key("nobody") is None

    with open_store(settings) as store:
        vector = np.zeros(512, dtype=np.float32)
        vector[0] = 1.0
        store.import_vector("ann", vector, model="m", source="test")
        store.record_attempt(AttemptRecord("ann", "m", "cli probe", "match", 1, 1, 0.9))
        token = ACTING_KEY.set("door-1")
        try:
            store.record_attempt(AttemptRecord("ann", "m", "http probe", "match", 1, 1, 0.9))
            store.record_identification(IdentifyRecord("m", "http probe", "identified", user="ann"))
        finally:
            ACTING_KEY.reset(token)
        store.record_identification(IdentifyRecord("m", "cli probe", "unknown"))
        assert [(a.source, a.key_name) for a in store.attempts("ann")] == [
            ("http probe", "door-1"),
            ("cli probe", None),
        ]
        assert [a.key_name for a in store.show("ann").attempts] == ["door-1", None]
        assert [(i["source"], i["key_name"]) for i in store.identifications()] == [
            ("cli probe", None),
            ("http probe", "door-1"),
        ]


@pytest.mark.slow
def test_a_running_keyring_sees_keys_added_and_revoked_elsewhere(backend_db):
    settings = Settings(db=backend_db)
    keys = ApiKeys(settings)
    with open_store(settings):
        pass
    clock = Clock()
    ring = KeyRing(settings, lambda: open_store(settings, "read"), clock=clock)
    assert ring.required() is False
    door = keys.add("door-1", "kiosk")
    assert ring.required() is False  # still the cached answer
    clock.now += 6
    assert ring.required() is True
    found = ring.identify(door.token)
    assert found is not None and found.name == "door-1" and found.scope == "kiosk"
    keys.revoke("door-1")
    assert ring.identify(door.token) is not None  # cached for a few seconds
    clock.now += 6
    assert ring.identify(door.token) is None and ring.required() is False


# -- the HTTP service --------------------------------------------------------------------
def test_every_route_has_a_scope_and_kiosk_keys_only_verify_and_identify(client_for, fake_engine, tmp_path):
    client = client_for(api_key=LEGACY, metrics=True)
    settings = client.app.state.facer_settings
    kiosk = ApiKeys(settings).add("door-1", "kiosk").token
    admin = ApiKeys(settings).add("hq", "admin").token
    client.app.state.keys.forget()
    routes = walk(client.app.routes)
    unmapped = routes - set(ROUTE_SCOPES)
    assert not unmapped, f"routes without a scope in facer_cli.server.scopes.ROUTE_SCOPES: {sorted(unmapped)}"
    assert {("POST", "/users/{name}/enroll"), ("POST", "/identify"), ("GET", "/metrics")} <= routes
    assert scope_for("GET", "/a/route/nobody/mapped") == "admin"
    for method, path in sorted(routes):
        url = path.replace("{name}", "x").replace("{challenge_id}", "x")
        needed = ROUTE_SCOPES[(method, path)]
        if needed is None:
            assert client.request(method, url).status_code not in (401, 403), (method, path)
            continue
        assert client.request(method, url).status_code == 401, (method, path)
        assert client.request(method, url, headers=headers(kiosk[:-2] + "xx")).status_code == 401, (method, path)
        by_kiosk = client.request(method, url, headers=headers(kiosk))
        if needed == "admin":
            assert by_kiosk.status_code == 403, (method, path, by_kiosk.text)
            error = by_kiosk.json()["error"]
            assert error["type"] == "ScopeError" and "needs the admin scope" in error["message"]
            assert "\n" not in error["message"]
        else:
            assert by_kiosk.status_code not in (401, 403), (method, path, by_kiosk.text)
        for token in (admin, LEGACY):
            answer = client.request(method, url, headers=headers(token))
            assert answer.status_code not in (401, 403), (method, path, answer.text)


def test_keys_added_and_revoked_while_the_app_runs(client_for, fake_engine, bundled_images):
    client = client_for()
    ring = client.app.state.keys
    clock = Clock()
    ring.clock = clock
    ring.forget()  # what the lifespan read, on the real clock
    assert client.get("/users").status_code == 200  # no key exists: none is needed (loopback)
    assert client.get("/health").json()["api_key_required"] is False
    keys = ApiKeys(client.app.state.facer_settings)
    admin = keys.add("hq", "admin").token
    clock.now += 6
    assert client.get("/users").status_code == 401
    assert client.get("/health").json()["api_key_required"] is True
    assert client.get("/users", headers=headers(admin)).status_code == 200
    kiosk = keys.add("door-1", "kiosk").token
    clock.now += 6
    assert client.post("/users/yao/enroll", files=images(bundled_images), headers=headers(admin)).status_code == 201
    assert client.post("/users/yao/verify", files=images(bundled_images), headers=headers(kiosk)).status_code == 200
    assert (
        client.post("/users/yao/enroll?mode=replace", files=images(bundled_images), headers=headers(kiosk)).status_code
        == 403
    )
    assert client.delete("/users/yao", headers=headers(kiosk)).status_code == 403
    keys.revoke("door-1")
    clock.now += 6
    refused = client.post("/users/yao/verify", files=images(bundled_images), headers=headers(kiosk))
    assert refused.status_code == 401 and "unknown or revoked" in refused.json()["error"]["message"]
    assert client.get("/users", headers=headers(admin)).status_code == 200


def test_the_logs_record_which_key_made_each_request(client_for, fake_engine, bundled_images, tmp_path):
    client = client_for(api_key=LEGACY)
    settings = client.app.state.facer_settings
    kiosk = ApiKeys(settings).add("door-1", "kiosk").token
    client.app.state.keys.forget()
    assert client.post("/users/yao/enroll", files=images(bundled_images), headers=headers(LEGACY)).status_code == 201
    assert client.post("/users/yao/verify", files=images(bundled_images), headers=headers(kiosk)).status_code == 200
    assert client.post("/users/yao/verify", files=images(bundled_images), headers=headers(LEGACY)).status_code == 200
    assert client.post("/identify", files=images(bundled_images), headers=headers(kiosk)).status_code == 200
    shown = client.get("/users/yao", headers=headers(LEGACY)).json()
    assert [a["key_name"] for a in shown["recent_attempts"]] == [SETTINGS_KEY, "door-1"]
    verified = CliRunner().invoke(
        cli_app, ["verify", "yao", str(bundled_images / "yaoming.jpg"), "--db", settings.db, "--json"]
    )
    assert verified.exit_code == 0, verified.output
    with open_store(settings, "read") as store:
        assert [a.key_name for a in store.attempts("yao")] == [None, SETTINGS_KEY, "door-1"]
        assert [i["key_name"] for i in store.identifications()] == ["door-1"]
    table = CliRunner().invoke(cli_app, ["users", "show", "yao", "--db", settings.db], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "door-1" in table.output and "api_key" in table.output


def test_the_api_key_setting_alone_is_an_admin_key(client_for, fake_engine, bundled_images):
    client = client_for(api_key=LEGACY)
    assert client.get("/users", headers=headers(LEGACY)).status_code == 200
    assert client.post("/users/yao/enroll", files=images(bundled_images), headers=headers(LEGACY)).status_code == 201
    assert client.get("/users", headers=headers(LEGACY[:-1] + "!")).status_code == 401
    assert client.get("/health").status_code == 200


def test_keys_are_stored_hashed(tmp_path):
    db = tmp_path / "facer.db"
    new = ApiKeys(Settings(db=str(db))).add("door-1", "kiosk")
    secret = new.token.encode()[-43:]
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert new.token.encode() not in data and secret not in data, path


# -- the CLI -------------------------------------------------------------------------------
def test_keys_commands(tmp_path):
    db = str(tmp_path / "facer.db")
    runner = CliRunner()
    added = runner.invoke(cli_app, ["keys", "add", "door-1", "--scope", "kiosk", "--db", db, "--json"])
    assert added.exit_code == 0, added.output
    token = json.loads(added.stdout)["key"]
    assert name_in(token) == "door-1"
    shown = runner.invoke(cli_app, ["keys", "add", "hq", "--scope", "admin", "--db", db])
    assert shown.exit_code == 0 and "facer_hq_" in shown.output
    listed = runner.invoke(cli_app, ["keys", "list", "--db", db, "--json"])
    assert listed.exit_code == 0 and token not in listed.output and "sha256" not in listed.output
    assert [(k["name"], k["scope"], k["revoked"]) for k in json.loads(listed.stdout)["keys"]] == [
        ("door-1", "kiosk", None),
        ("hq", "admin", None),
    ]
    revoked = runner.invoke(cli_app, ["keys", "revoke", "door-1", "--db", db])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    again = runner.invoke(cli_app, ["keys", "revoke", "door-1", "--db", db])
    assert again.exit_code == 2 and "no active API key" in again.output
    table = runner.invoke(cli_app, ["keys", "list", "--db", db], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "door-1" in table.output and token not in table.output


def test_while_the_store_cannot_be_read_the_last_answer_stands(tmp_path):
    from facer_cli.errors import StoreError

    settings = Settings(db=str(tmp_path / "facer.db"))
    door = ApiKeys(settings).add("door-1", "kiosk")
    down = False

    def opener():
        if down:
            raise StoreError("the database is unreachable")
        return open_store(settings, "read")

    clock = Clock()
    ring = KeyRing(settings, opener, clock=clock)
    with pytest.raises(StoreError):  # nothing known yet: 503
        down = True
        ring.identify(door.token)
    down = False
    assert ring.required() is True and ring.identify(door.token) is not None
    down = True
    clock.now += 60
    assert ring.required() is True and ring.identify(door.token) is not None
    with pytest.raises(StoreError):
        ring.identify(new_token("door-2"))


def test_the_json_access_log_names_the_key(client_for, fake_engine, caplog):
    import logging

    from facer_cli.server.observe import JsonFormatter

    client = client_for(log_format="json", api_key=LEGACY)
    kiosk = ApiKeys(client.app.state.facer_settings).add("door-1", "kiosk").token
    client.app.state.keys.forget()
    with caplog.at_level(logging.INFO, logger="facer.access"):
        assert client.post("/liveness/challenge", headers=headers(kiosk)).status_code == 200
        assert client.get("/users", headers=headers(kiosk)).status_code == 403
        assert client.get("/users", headers=headers(LEGACY)).status_code == 200
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "facer.access"]
    assert [(line["status"], line["api_key"]) for line in lines] == [(200, "door-1"), (403, "door-1"), (200, "api_key")]
    assert kiosk not in json.dumps(lines)


def call_from(app, address: str, path: str, headers: list[tuple[bytes, bytes]] = ()) -> int:
    """The status of one GET that reached the app on `address` (an ASGI call: no socket, no traffic)."""
    import asyncio

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": list(headers),
        "server": (address, 23535), "client": ("10.0.0.9", 40000),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return next(message["status"] for message in sent if message["type"] == "http.response.start")


def test_keys_in_the_store_alone_let_the_service_answer_beyond_loopback(tmp_path):
    from facer_cli.server import create_app
    from facer_cli.server.exposure import check_exposure

    settings = Settings(db=str(tmp_path / "facer.db"))
    assert not stored_keys_active(settings)  # no store yet: no key
    open_store(settings).close()  # as facer serve makes it before it listens
    assert not stored_keys_active(settings)
    app = create_app(settings)
    assert call_from(app, "10.0.0.5", "/users") == 403  # reachable from outside, and no key needed
    token = ApiKeys(settings).add("door-1", "admin").token
    assert stored_keys_active(settings)
    check_exposure("0.0.0.0", stored_keys_active(settings), False)  # facer serve --host 0.0.0.0 starts
    app = create_app(settings)
    # Past the exposure rule now: the key check answers (it needs one, and this request has none).
    assert call_from(app, "10.0.0.5", "/users") == 401
    assert token.startswith("facer_door-1_")
    ApiKeys(settings).revoke("door-1")
    assert not stored_keys_active(settings)
