"""`facer serve`: the HTTP service on uvicorn, one process, models loaded before the port opens."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facer_cli.cli.app import err_console, settings_for
from facer_cli.cli.options import DbOption, DetSizeOption, ModelOption, setting_option
from facer_cli.cli.output.text import literal
from facer_cli.errors import MissingExtraError
from facer_cli.store.urls import describe_db

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def require_server_extra(metrics: bool = False) -> None:
    missing = []
    for module in ("fastapi", "uvicorn", "multipart", "fastapi_offline", *(("prometheus_client",) if metrics else ())):
        try:
            __import__(module)
        except ImportError:
            missing.append(
                {
                    "multipart": "python-multipart",
                    "fastapi_offline": "fastapi-offline",
                    "prometheus_client": "prometheus-client",
                }.get(module, module)
            )
    if missing:
        raise MissingExtraError(
            f"facer serve needs {', '.join(missing)}: install the server extra with pip install 'facer[server]'",
            extra="server",
        )


def serve_command(
    ctx: typer.Context,
    host: Annotated[
        Optional[str], setting_option("server_host", "--host", help="Address to listen on.", shown=True)
    ] = None,
    port: Annotated[Optional[int], setting_option("server_port", "--port", help="TCP port.", shown=True)] = None,
    api_key: Annotated[
        Optional[str],
        setting_option(
            "api_key",
            "--api-key",
            help="Require this key in the X-API-Key header (prefer FACER_API_KEY: a flag shows in the process list).",
            shown=True,
        ),
    ] = None,
    allow_insecure_remote: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-remote",
            help="Listen on a non-loopback address without an API key (INSECURE: anyone who reaches the port "
            "can enroll, verify and delete users).",
        ),
    ] = False,
    db: DbOption = None,
    concurrency: Annotated[Optional[int], setting_option("server_concurrency", "--concurrency")] = None,
    metrics: Annotated[
        Optional[bool],
        setting_option("metrics", "--metrics/--no-metrics", help="Answer GET /metrics (Prometheus).", shown=True),
    ] = None,
    log_format: Annotated[
        Optional[str],
        setting_option("log_format", "--log-format", help="text, or json: one object a line."),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help=f"uvicorn's log level: {', '.join(LOG_LEVELS)}.")
    ] = "info",
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
) -> None:
    """Serve the HTTP API (enroll, verify, identify, users, token, compare; docs at /docs) in one process.

    The models load before the port opens. Stop with Ctrl-C or SIGTERM: requests in flight finish
    first, then exit 0. Endpoints: docs/http-api.md.
    In Python: facer_cli.server.create_app(settings), run with uvicorn.
    """
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    settings = settings_for(ctx, server_host=host, server_port=port, server_concurrency=concurrency)
    require_server_extra(metrics=settings.metrics)
    from facer_cli.server.exposure import check_exposure, is_loopback
    from facer_cli.service.keys import stored_keys_active

    # A key is needed when the setting holds one or the store has an active one (`facer keys add`).
    key_required = settings.api_key is not None or stored_keys_active(settings)
    check_exposure(settings.server_host, key_required, allow_insecure_remote)

    from facer_cli.server.listen import bind_socket

    # The port first: a busy one is one line and exit code, before the models load. Bound but not
    # listening, it refuses connections until the models are ready.
    sock = bind_socket(settings.server_host, settings.server_port)
    try:
        from facer_cli.server import create_app
        from facer_cli.server.edge import build_server, serve_on
        from facer_cli.service import Facer

        # Load the models and open the store here, so a missing pack or a bad --db is one line and an
        # exit code rather than a traceback from the server's startup.
        facer = Facer(settings)
        engine = facer.engine
        facer.open_store().close()
        app = create_app(settings, engine=engine, allow_insecure_remote=allow_insecure_remote)
        server = build_server(app, settings, log_level)  # sets up the log lines
        insecure = not key_required and not is_loopback(settings.server_host)
        database = describe_db(settings.db, settings.db_path)
        url = f"http://{settings.server_host}:{settings.server_port}"
        if settings.log_format == "json":
            import logging

            from facer_cli.server.observe import log_event

            if insecure:
                log_event("insecure", f"listening on {settings.server_host} without an API key", level=logging.WARNING)
            log_event(
                "start",
                f"facer serve: model {engine.fingerprint}, {url}",
                model=engine.fingerprint,
                provider=engine.info.provider,
                database=database,
                url=url,
                api_key_required=key_required,
                metrics=settings.metrics,
            )
        else:
            if insecure:
                err_console.print(
                    literal(
                        f"warning: listening on {settings.server_host} without an API key (--allow-insecure-remote)",
                        "bold red",
                    )
                )
            err_console.print(
                literal(
                    f"facer serve: model {engine.fingerprint} on {engine.info.provider}, database {database}, "
                    f"{url} (docs at /docs)" + ("; X-API-Key required" if key_required else "")
                ),
                soft_wrap=True,
            )
            if engine.info.provider_note:
                err_console.print(literal(f"warning: {engine.info.provider_note}", "bold yellow"), soft_wrap=True)
        serve_on(server, sock)
    finally:
        sock.close()
