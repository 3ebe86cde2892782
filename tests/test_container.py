"""The container image: built the way docs/container.md says (container/build.sh: a wheelhouse
downloaded here, then a build with no network), run with podman, and checked from outside.

Slow (a few minutes the first time; the base image, the wheelhouse and the dependency layer are
kept for the next run). Skips where podman cannot run the image (not installed, not root), unless
FACER_REQUIRE_CONTAINER=1 (as `.ci/run` sets it): then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from helpers import REPO

from facer_cli.engine.modelpack import bundled_folder

pytestmark = [pytest.mark.slow, pytest.mark.container]

# Read at import: the autouse fixture in conftest.py clears FACER_* variables before each test.
REQUIRE = os.environ.get("FACER_REQUIRE_CONTAINER") == "1"
BUILD = REPO / "container" / "build.sh"
TAG = "localhost/facer-test:latest"
API_KEY = "container-test-key-0123456789"
PODMAN_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'


def _unavailable() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman buildah runc debootstrap)"
    if os.geteuid() != 0:
        return "podman builds and runs the image here as root only"
    if shutil.which("debootstrap") is None and not os.environ.get("BASE"):
        return "debootstrap is not installed: it makes the base image where no registry is reachable"
    return None


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF"):
        conf = tmp_path_factory.mktemp("podman") / "containers.conf"
        conf.write_text(PODMAN_CONF)
        env["CONTAINERS_CONF"] = str(conf)
    return env


def podman(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args)}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def image(podman_env) -> str:
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"FACER_REQUIRE_CONTAINER=1, but {reason}")
        pytest.skip(reason)
    started = time.perf_counter()
    result = subprocess.run([str(BUILD), TAG], env=podman_env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        pytest.fail(f"container/build.sh: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    size = int(podman(podman_env, "image", "inspect", "--format", "{{.Size}}", TAG).stdout.strip())
    print(f"\nimage {TAG}: built in {time.perf_counter() - started:.0f} s, {size / 1e6:.0f} MB")
    return TAG


def run_in(env: dict[str, str], image: str, *args: str, entrypoint: str | None = None, timeout: float = 300):
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    return podman(env, "run", "--runtime", "runc", "--rm", "--network", "none", *extra, image, *args, timeout=timeout)


def test_commands_run_in_the_image(image, podman_env):
    version = run_in(podman_env, image, "--version")
    assert "facer" in version.stdout.lower(), version.stdout
    doctor = run_in(podman_env, image, "doctor", "--json")
    info = json.loads(doctor.stdout)
    assert info["provider"] == "CPUExecutionProvider", info["provider"]
    assert info["fingerprint"].startswith("bundled:"), info["fingerprint"]
    demo = run_in(podman_env, image, "demo")
    assert "yaoming" in demo.stdout.lower() or "yao" in demo.stdout.lower(), demo.stdout[-2000:]


def test_image_holds_no_compiler_pip_cache_or_unused_packages(image, podman_env):
    script = (
        "for tool in gcc cc c++ g++ make; do command -v $tool && echo FOUND $tool; done; "
        "find / -xdev \\( -path '*/.cache/pip' -o -path '/root/.cache' \\) -print 2>/dev/null | sed 's/^/FOUND /'; "
        "id -u; "
        "/opt/facer/bin/python -c 'import importlib.util as u; "
        'print(*("FOUND " + m for m in ("pip", "setuptools", "insightface", "scipy", "skimage", "onnx", "pytest", '
        '"matplotlib", "mypy") if u.find_spec(m)))\''
    )
    result = run_in(podman_env, image, "-c", script, entrypoint="/bin/sh")
    found = [line for line in result.stdout.splitlines() if line.startswith("FOUND")]
    assert found == [], found
    assert result.stdout.split()[0] == "10001", result.stdout  # the image's user is not root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(port: int, method: str, path: str, fields: dict[str, Path] | None = None, key: str | None = API_KEY):
    """(status, JSON body) of one request; multipart files from `fields`."""
    headers = {"X-API-Key": key} if key else {}
    body = None
    if fields:
        boundary = uuid.uuid4().hex
        parts = []
        for name, file in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file.name}"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n".encode()
                + file.read_bytes()
                + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_healthy(port: int, env: dict[str, str], name: str, limit_s: float = 120) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        try:
            status, body = http(port, "GET", "/health", key=None)
            if status == 200:
                return time.perf_counter() - started
        except (OSError, ValueError):
            pass
        state = podman(env, "inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state in ("exited", "stopped"):
            logs = podman(env, "logs", name, check=False)
            pytest.fail(f"the container stopped before /health answered:\n{logs.stdout[-2000:]}{logs.stderr[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"/health did not answer within {limit_s:.0f} s")


@pytest.fixture
def served(image, podman_env, tmp_path):
    """Start `facer serve` from the image (host network, a free port, the key from a secret file,
    the store on a new named volume unless `env` names another store); `start(env, wait, mounts)` returns
    (name, port, seconds to a healthy /health). Every container and the volume are removed afterwards."""
    secret = tmp_path / "api_key"
    secret.write_text(API_KEY + "\n")
    secret.chmod(0o444)
    volume = f"facer-test-{uuid.uuid4().hex[:8]}"
    podman(podman_env, "volume", "create", volume)
    names: list[str] = []

    def start(env: dict[str, str] | None = None, wait: bool = True, mounts: tuple[str, ...] = ()):
        name = f"{volume}-{len(names)}"
        port = free_port()
        names.append(name)
        extra = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
        extra += [arg for mount in mounts for arg in ("-v", mount)]
        started = time.perf_counter()
        podman(
            podman_env, "run", "--runtime", "runc", "-d", "--name", name, "--network", "host",
            "-v", f"{volume}:/data", "-v", f"{secret}:/run/secrets/api_key:ro",
            "-e", "FACER_API_KEY_FILE=/run/secrets/api_key", "-e", f"FACER_SERVER_PORT={port}",
            "-e", "FACER_MIN_VALID_FRAMES=1", *extra, image,
        )  # fmt: skip
        if wait:
            wait_healthy(port, podman_env, name)
        return name, port, time.perf_counter() - started

    yield start
    for name in names:
        podman(podman_env, "rm", "--force", "--time", "0", name, check=False)
    podman(podman_env, "volume", "rm", "--force", volume, check=False)


def test_serve_answers_keeps_its_store_and_stops_on_sigterm(served, podman_env):
    photos = bundled_folder()
    name, port, ready_s = served()
    print(f"\nrun to a healthy /health: {ready_s:.1f} s")

    status, health = http(port, "GET", "/health", key=None)
    assert status == 200 and health["status"] == "healthy" and health["api_key_required"] is True, health
    assert http(port, "GET", "/users", key=None)[0] == 401  # the key from FACER_API_KEY_FILE is required
    status, token = http(port, "POST", "/token/generate", {"files": photos / "yaoming.jpg"})
    assert status == 200 and len(token["token"]) == 512, (status, token)
    status, enrolled = http(port, "POST", "/users/yao/enroll", {"files": photos / "yaoming.jpg"})
    assert status == 201, (status, enrolled)

    # PID 1 is facer itself (the entrypoint script exec'd it), as the image's user.
    proc = podman(
        podman_env, "exec", name, "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; grep ^Uid: /proc/1/status"
    )
    cmdline, uid_line = proc.stdout.splitlines()[:2]
    assert "facer" in cmdline and "serve" in cmdline, cmdline
    assert uid_line.split()[1:3] == ["10001", "10001"], uid_line
    if podman(podman_env, "healthcheck", "run", name, check=False).returncode != 0:
        pytest.fail("the image's HEALTHCHECK fails on a healthy server")

    started = time.perf_counter()
    podman(podman_env, "stop", "--time", "10", name, timeout=60)
    stopped_s = time.perf_counter() - started
    exit_code = podman(podman_env, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    print(f"podman stop (SIGTERM) to exit {exit_code}: {stopped_s:.1f} s")
    assert exit_code == "0" and stopped_s < 10, (exit_code, stopped_s)

    # A new container on the same volume finds the enrollment.
    _, port, ready_s = served()
    print(f"a new container on the volume, run to a healthy /health: {ready_s:.1f} s")
    status, users = http(port, "GET", "/users")
    assert status == 200 and [u["name"] for u in users["users"]] == ["yao"], users
    status, verified = http(port, "POST", "/users/yao/verify", {"files": photos / "yaoming.jpg"})
    assert status == 200 and verified["band"] == "match", verified


def test_the_entrypoint_refuses_a_secret_file_it_cannot_read(image, podman_env):
    result = podman(
        podman_env, "run", "--runtime", "runc", "--rm", "--network", "none",
        "-e", "FACER_API_KEY_FILE=/run/secrets/missing", image, "--version", check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert "FACER_API_KEY_FILE names /run/secrets/missing" in result.stderr, result.stderr


@pytest.fixture
def password_server(tmp_path):
    """A throwaway PostgreSQL cluster (tests/pg_cluster.py) whose role `facer` needs a password
    over TCP, as compose.yaml's database does: (URL without the password, the password)."""
    from pg_cluster import Cluster, NoPostgres

    try:
        cluster = Cluster()
    except NoPostgres as exc:
        if REQUIRE or os.environ.get("FACER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"no PostgreSQL for the fleet test: {exc}")
        pytest.skip(f"no PostgreSQL for the fleet test: {exc}")
    try:
        import psycopg
        from psycopg import sql

        cluster.start()
        url = cluster.create_database("fleet")
        password = uuid.uuid4().hex
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE facer PASSWORD {}").format(sql.Literal(password)))
        (cluster.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        cluster.restart()
        yield url, password
    finally:
        cluster.destroy()


def test_two_replicas_share_one_postgresql_store(served, podman_env, password_server, tmp_path):
    """compose.yaml's fleet, without compose: two replicas at once on one PostgreSQL store, the
    password from a secret file (PGPASSWORD_FILE); one enrolls, the other verifies and identifies."""
    url, password = password_server
    secret = tmp_path / "db_password"
    secret.write_text(password + "\n")
    secret.chmod(0o444)
    # Without the password the store refuses the login (exit 6): the password below is what opens it.
    refused = podman(
        podman_env, "run", "--runtime", "runc", "--rm", "--network", "host", "-e", f"FACER_DB={url}",
        TAG, "users", "list", check=False,
    )  # fmt: skip
    assert refused.returncode == 6, (refused.returncode, refused.stdout, refused.stderr)

    env = {"FACER_DB": url, "PGPASSWORD_FILE": "/run/secrets/db_password"}
    mounts = (f"{secret}:/run/secrets/db_password:ro",)
    # Both start at once: the first sets the schema up, the other waits for it (an advisory lock).
    replicas = [served(env, wait=False, mounts=mounts) for _ in range(2)]
    for name, port, _ in replicas:
        wait_healthy(port, podman_env, name)
    (_, one, _), (_, other, _) = replicas
    photos = bundled_folder()

    status, enrolled = http(one, "POST", "/users/yao/enroll", {"files": photos / "yaoming.jpg"})
    assert status == 201, (status, enrolled)
    status, users = http(other, "GET", "/users")
    assert status == 200 and [u["name"] for u in users["users"]] == ["yao"], users
    status, verified = http(other, "POST", "/users/yao/verify", {"files": photos / "yaoming.jpg"})
    assert status == 200 and verified["band"] == "match", verified
    status, identified = http(other, "POST", "/identify", {"files": photos / "yaoming.jpg"})
    assert status == 200 and identified["decision"] == "identified" and identified["user"] == "yao", identified
    assert http(one, "GET", "/health", key=None)[1]["status"] == "healthy"
