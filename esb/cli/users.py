"""``esb users``: users, roles, grants and API tokens (docs/security.md, "Users and WS-Security").

Every command needs ``users.manage``. Bootstrap: while the database has no
user, the engine runs on its open policy and any operating-system user may
add the first one, who is given the role ``admin`` (permission ``*``, created
then if missing); from then on the actor must be a user with ``users.manage``
(``ESB_ACTOR=NAME``, or ``ESB_TOKEN`` holding an API token of theirs).

Passwords come from ``--password-stdin`` (one line, for scripts) or an
interactive prompt, never from the command line (it would sit in the shell
history and the process list). An API token is printed once, at creation.
"""

from __future__ import annotations

import sys

import click

from esb.authz import PERMISSIONS, authorize
from esb.cli.common import DURATION, emit, guard, journal_of, main_group
from esb.errors import ConfigError
from esb.security import tokens
from esb.security.users import ALL, PERSON, SYSTEM, Scope, User, UserStore, split_list

ADMIN_ROLE = "admin"
USER_COLUMNS = ["name", "kind", "roles", "password", "certificate", "disabled", "locked_until", "last_login_at"]


@main_group.group()
def users() -> None:
    """Users, roles, grants and API tokens (needs users.manage)."""


def _password(from_stdin: bool, *, required: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        value = line[:-1] if line.endswith("\n") else line
        if not value:
            raise ConfigError("--password-stdin: no password on standard input")
        return value
    if required or sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    return None


def _view(user: User) -> dict[str, object]:
    certificate = " ".join(
        p for p in (user.cert_subject or "", f"sha256:{user.cert_fingerprint}" if user.cert_fingerprint else "") if p
    )
    return {
        "name": user.name, "kind": user.kind, "roles": ",".join(user.roles), "password": user.has_password,
        "certificate": certificate, "disabled": user.disabled, "locked_until": user.locked_until,
        "last_login_at": user.last_login_at,
    }  # fmt: skip


@users.command(name="add")
@click.argument("name")
@click.option("--password-stdin", "password_stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--system", is_flag=True, help="A system (node) identified by its certificate, not a person.")
@click.option("--subject", metavar="DN", help="The system's certificate subject (RFC 4514).")
@click.option("--fingerprint", metavar="HEX", help="The system's certificate SHA-256 fingerprint.")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="Grant this role too (repeatable).")
@click.pass_context
@guard
def add(
    ctx: click.Context,
    name: str,
    password_stdin: bool,
    system: bool,
    subject: str | None,
    fingerprint: str | None,
    roles: tuple[str, ...],
) -> None:
    """Add a user (a person with a password, or with --system a node known by its certificate)."""
    actor = authorize("users.manage", target="user")
    if (subject or fingerprint) and not system:
        raise click.UsageError("--subject and --fingerprint describe a system: add --system")
    if system and not (subject or fingerprint):
        raise click.UsageError("a --system user needs --subject DN or --fingerprint HEX")
    password = _password(password_stdin, required=False) if not system or password_stdin else None
    with journal_of(ctx) as journal:
        store = UserStore(journal.engine)
        first = store.count() == 0
        user = store.add_user(name, password=password, kind=SYSTEM if system else PERSON, cert_subject=subject,
                              cert_fingerprint=fingerprint)  # fmt: skip
        wanted = list(roles)
        if first and ADMIN_ROLE not in wanted:
            if ADMIN_ROLE not in {r.name for r in store.roles()}:
                store.save_role(ADMIN_ROLE, [ALL], description="everything (made for the first user)")
            wanted.append(ADMIN_ROLE)
            click.echo(f"esb: '{name}' is the first user and gets the role '{ADMIN_ROLE}' (all permissions); "
                       f"from now on run admin commands as a user (ESB_ACTOR or ESB_TOKEN)", err=True)  # fmt: skip
        for role in wanted:
            store.grant(role, name)
        user = store.user(name) or user
    click.echo(f"esb: {actor} added user '{name}'", err=True)
    emit(ctx, _view(user))


@users.command(name="passwd")
@click.argument("name")
@click.option("--password-stdin", "password_stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
@guard
def passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a user's password (and lift a lockout)."""
    authorize("users.manage", target="user")
    password = _password(password_stdin, required=True)
    assert password is not None
    with journal_of(ctx) as journal:
        UserStore(journal.engine).set_password(name, password)
    click.echo(f"password of '{name}' changed")


@users.command()
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@click.pass_context
@guard
def disable(ctx: click.Context, name: str, enable: bool) -> None:
    """Disable a user: no login, no token, no certificate of theirs works (users are never deleted)."""
    authorize("users.manage", target="user")
    with journal_of(ctx) as journal:
        UserStore(journal.engine).set_disabled(name, not enable)
    click.echo(f"user '{name}' {'enabled' if enable else 'disabled'}")


@users.command(name="list")
@click.pass_context
@guard
def list_command(ctx: click.Context) -> None:
    """Every user with roles, how they authenticate and whether they are locked out."""
    authorize("users.manage", target="user")
    with journal_of(ctx) as journal:
        found = UserStore(journal.engine).list_users()
    emit(ctx, [_view(u) for u in found], USER_COLUMNS)


@users.group()
def roles() -> None:
    """Roles: permissions and, for image access, a scope of modalities and departments."""


@roles.command(name="list")
@click.pass_context
@guard
def roles_list(ctx: click.Context) -> None:
    """Every role with its permissions and scope."""
    authorize("users.manage", target="role")
    with journal_of(ctx) as journal:
        found = UserStore(journal.engine).roles()
    rows = [{"name": r.name, "permissions": ",".join(sorted(r.permissions)), "scope": str(r.scope),
             "description": r.description} for r in found]  # fmt: skip
    emit(ctx, rows, ["name", "permissions", "scope", "description"])


@roles.command(name="set")
@click.argument("name")
@click.option("--permissions", required=True, metavar="LIST",
              help=f"Comma list of permissions, or * for all ({', '.join(PERMISSIONS)}).")  # fmt: skip
@click.option("--modalities", default="", metavar="LIST", help="Only studies with a series of these modalities.")
@click.option("--departments", default="", metavar="LIST",
              help="Only studies with a series from these InstitutionalDepartmentName values.")  # fmt: skip
@click.option("--description", default="", help="What the role is for.")
@click.pass_context
@guard
def roles_set(ctx: click.Context, name: str, permissions: str, modalities: str, departments: str,
              description: str) -> None:  # fmt: skip
    """Create a role, or replace its permissions, scope and description."""
    authorize("users.manage", target="role")
    scope = Scope(split_list(modalities), split_list(departments))
    wanted = [p.strip() for p in permissions.split(",") if p.strip()]
    with journal_of(ctx) as journal:
        role = UserStore(journal.engine).save_role(name, wanted, scope=scope, description=description)
    click.echo(f"role '{role.name}': {', '.join(sorted(role.permissions)) or 'no permission'}; {role.scope}")


@users.command()
@click.argument("role")
@click.argument("user")
@click.pass_context
@guard
def grant(ctx: click.Context, role: str, user: str) -> None:
    """Give USER the role ROLE."""
    authorize("users.manage", target="role")
    with journal_of(ctx) as journal:
        UserStore(journal.engine).grant(role, user)
    click.echo(f"'{user}' holds role '{role}'")


@users.command()
@click.argument("role")
@click.argument("user")
@click.pass_context
@guard
def revoke(ctx: click.Context, role: str, user: str) -> None:
    """Take the role ROLE from USER."""
    authorize("users.manage", target="role")
    with journal_of(ctx) as journal:
        UserStore(journal.engine).revoke(role, user)
    click.echo(f"'{user}' no longer holds role '{role}'")


@users.group()
def token() -> None:
    """API tokens: for systems and scripts (HTTP Authorization: Bearer, ESB_TOKEN for the CLI)."""


@token.command(name="create")
@click.argument("user")
@click.option("--expires", type=DURATION, metavar="DURATION", help="Lifetime (90d, 12h); default: no expiry.")
@click.option("--label", default="", help="What the token is for (shown in token list).")
@click.pass_context
@guard
def token_create(ctx: click.Context, user: str, expires: float | None, label: str) -> None:
    """Make a token for USER; it is printed now and never again."""
    authorize("users.manage", target="token")
    with journal_of(ctx) as journal:
        token_id, value = tokens.create_token(journal.engine, user, expires_in=expires, label=label)
    if ctx.obj.get("json"):
        emit(ctx, {"id": token_id, "user": user, "token": value})
        return
    click.echo(value)
    click.echo(f"esb: token {token_id} for '{user}': keep it now, it cannot be shown again", err=True)


@token.command(name="revoke")
@click.argument("token_id")
@click.pass_context
@guard
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by its id (token list shows them); nodes stop taking it within 30 s."""
    authorize("users.manage", target="token")
    with journal_of(ctx) as journal:
        user = tokens.revoke_token(journal.engine, token_id)
    click.echo(f"token {token_id} of '{user}' revoked")


@token.command(name="list")
@click.argument("user", required=False)
@click.pass_context
@guard
def token_list(ctx: click.Context, user: str | None) -> None:
    """Tokens (never their values): id, user, label, created, expires, last used, revoked."""
    authorize("users.manage", target="token")
    with journal_of(ctx) as journal:
        found = tokens.list_tokens(journal.engine, user)
    rows = [{"id": t.id, "user": t.user, "label": t.label, "created_at": t.created_at, "expires_at": t.expires_at,
             "last_used_at": t.last_used_at, "revoked_at": t.revoked_at} for t in found]  # fmt: skip
    emit(ctx, rows)
