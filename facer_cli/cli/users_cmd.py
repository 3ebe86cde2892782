"""`facer users list|show|remove|rename|export|import`: the store, person by person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from facer_cli.cli.app import JsonOption, app, console, print_json, settings_for
from facer_cli.cli.enroll_cmd import DbOption
from facer_cli.compare import save_vector
from facer_cli.enrollment import current_model, import_template
from facer_cli.errors import InputError
from facer_cli.store import Store

users_app = typer.Typer(help="List, show, remove, rename, export and import enrolled users.", no_args_is_help=True)
app.add_typer(users_app, name="users")

UserArgument = Annotated[str, typer.Argument(help="The user's name.")]


def _date(value: str | None) -> str:
    return "–" if not value else value[:19].replace("T", " ")


def open_store(ctx: typer.Context) -> Store:
    """The store of `--db`, FACER_DB, facer.toml or the default location."""
    return Store.open(settings_for(ctx))


@users_app.command("list")
def users_list(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Every user: templates, frames used, models and dates."""
    with open_store(ctx) as store:
        users = store.list()
        path = store.path
    if json_output:
        print_json({"db": str(path), "users": [u.to_dict() for u in users]})
        return
    table = Table(title=f"{len(users)} user(s) in {path}", header_style="bold")
    for column, justify in (("user", "left"), ("templates", "right"), ("frames", "right"), ("model", "left"),
                            ("enrolled", "left"), ("updated", "left"), ("last verified", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for u in users:
        table.add_row(u.name, str(u.templates), str(u.frames), ", ".join(u.models), _date(u.created),
                      _date(u.updated), _date(u.last_verified))
    console.print(table)


@users_app.command("show")
def users_show(ctx: typer.Context, user: UserArgument, db: DbOption = None, json_output: JsonOption = False) -> None:
    """One user's templates (how each was made) and their latest verify attempts."""
    with open_store(ctx) as store:
        details = store.show(user)
    if json_output:
        print_json(details.to_dict())
        return
    u = details.user
    console.print(f"[bold]{u.name}[/]: enrolled {_date(u.created)}, updated {_date(u.updated)}, "
                  f"last verified {_date(u.last_verified)}")
    table = Table(title="templates", header_style="bold")
    for column in ("id", "created", "model", "dim", "frames used/seen", "outliers", "mean quality", "source"):
        table.add_column(column, overflow="fold")
    for t in details.templates:
        frames = "–" if t.frames_used is None else f"{t.frames_used}/{t.frames_seen}"
        table.add_row(str(t.id), _date(t.created), t.model, str(t.dimension), frames,
                      "–" if t.outliers is None else str(t.outliers),
                      "–" if t.mean_quality is None else f"{t.mean_quality:.2f}", t.source or "")
    console.print(table)
    attempts = Table(title="latest verify attempts", header_style="bold")
    for column in ("when", "similarity", "band", "frames used/seen", "source"):
        attempts.add_column(column, overflow="fold")
    for a in details.attempts:
        attempts.add_row(_date(a.created), "–" if a.similarity is None else f"{a.similarity:.4f}",
                         a.band.replace("_", " "), f"{a.frames_used}/{a.frames_seen}", a.source or "")
    console.print(attempts if details.attempts else "no verify attempts yet")


@users_app.command("remove")
def users_remove(
    ctx: typer.Context,
    user: UserArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a user with every template and per-frame sample (the audit log keeps no embeddings)."""
    with open_store(ctx) as store:
        store.templates(user, with_vectors=False)  # unknown user: say so before asking
        if not yes and not typer.confirm(f"remove {user.strip()!r} and all their templates?"):
            raise typer.Abort()
        removal = store.remove(user)
    if json_output:
        print_json(removal.to_dict())
    else:
        console.print(f"removed {removal.user!r}: {removal.templates} template(s), {removal.samples} sample(s)")


@users_app.command("rename")
def users_rename(
    ctx: typer.Context, old: UserArgument, new: Annotated[str, typer.Argument(help="The new name.")],
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Give a user another name (templates and audit history follow)."""
    with open_store(ctx) as store:
        summary = store.rename(old, new)
    if json_output:
        print_json(summary.to_dict())
    else:
        console.print(f"renamed {old.strip()!r} to {summary.name!r}")


@users_app.command("export")
def users_export(
    ctx: typer.Context,
    user: UserArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the template here as a 1-D float32 .npy.", dir_okay=False)],
    template: Annotated[Optional[int], typer.Option("--template", help="Which template (see `users show`; default: the newest).")] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write one of a user's templates to a .npy file, and print the model fingerprint it needs on import."""
    with open_store(ctx) as store:
        stored = store.export(user, template)
    try:
        save_vector(out, stored.vector)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    if json_output:
        print_json({**stored.to_dict(), "out": str(out)})
    else:
        console.print(f"template {stored.id} of {stored.user!r} written to {out} (model {stored.model})")
        console.print(f"import it with: facer users import NAME {out} --fingerprint {stored.model}", soft_wrap=True)


@users_app.command("import")
def users_import(
    ctx: typer.Context,
    user: UserArgument,
    file: Annotated[Path, typer.Argument(help="A .npy template (1-D float vector).", dir_okay=False)],
    fingerprint: Annotated[Optional[str], typer.Option("--fingerprint", help="The model that made it (as `users export` or `facer doctor` print it).")] = None,
    current_model_flag: Annotated[bool, typer.Option("--current-model", help="It was made by the model facer is set to use.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="The user exists: replace their template(s).")] = False,
    add: Annotated[bool, typer.Option("--add", help="The user exists: add this as another template.")] = False,
    model_name: Annotated[Optional[str], typer.Option("--model", help='With --current-model: the model pack ("bundled" or a pack name).')] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store a .npy template for a user. facer must know which model made it: --fingerprint FP or --current-model."""
    if replace and add:
        raise typer.BadParameter("give --replace or --add, not both")
    if bool(fingerprint) == current_model_flag:
        raise typer.BadParameter(
            f"cannot know which model made {file}: give --fingerprint FP (printed by `facer users export`) "
            "or --current-model (made by the model facer is set to use), one of them"
        )
    settings = settings_for(ctx)
    dimension = None
    if current_model_flag:
        fingerprint, dimension = current_model(settings)
    mode = "replace" if replace else "add" if add else "new"
    with Store.open(settings) as store:
        stored = import_template(store, user, file, model=fingerprint, dimension=dimension, mode=mode)
    if json_output:
        print_json(stored.to_dict())
    else:
        console.print(f"imported {file} as template {stored.id} of {stored.user!r} (model {stored.model})")


@users_app.command("check")
def users_check(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Check the database file for damage (SQLite quick_check over the whole file). Exit 0 ok, 6 damaged."""
    with open_store(ctx) as store:
        result = store.check()
        path, users = store.path, store.count()
    if json_output:
        print_json({"db": str(path), "check": result, "users": users})
        return
    console.print(f"{path}: {result}, {users} user(s)")
