"""The listening socket `facer serve` opens itself, before the models load, so a busy port or an
address this machine does not have is one error (`ServeError`) rather than uvicorn's log lines
and its exit status. Imports nothing beyond the standard library (the CLI's error table uses it)."""

from __future__ import annotations

import errno
import socket

from facer_cli.errors import FacerError


class ServeError(FacerError):
    """The HTTP service did not start."""


class ListenError(ServeError):
    """The HTTP service cannot listen: the port is in use, the address is not this machine's, or not permitted."""


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is in use by another program"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot listen on {where}: not permitted (ports below 1024 need administrator rights)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, not yet listening: connections are refused until the server starts.
    Same choices as uvicorn's own (IPv6 when the host has a colon, SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = host.strip("[]")
    try:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP (else every
        # small response waits ~40 ms for a delayed ACK).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise ListenError(describe_bind_error(host, port, exc)) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except socket.gaierror:
        sock.close()
        raise ListenError(f"cannot listen on {host}: no such host name or address") from None
    except OSError as exc:
        sock.close()
        raise ListenError(describe_bind_error(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock
