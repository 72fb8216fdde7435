"""``esb certs``: a development CA and node certificates for TLS between the engine and its peers.

``esb certs init-ca --dir ca/`` makes ``ca/ca.pem`` (the trust anchor every
node lists as ``cafile``) and ``ca/ca.key`` (mode 0600); ``esb certs issue
--ca-dir ca/ --name node1 --san 127.0.0.1,localhost --out certs/`` makes
``certs/node1.pem`` and ``certs/node1.key`` for ``certfile``/``keyfile``;
``esb certs show FILE`` prints what a peer's certificate says, including the
SHA-256 fingerprint that ``peers=sha256:...`` names. Production sites use
their own PKI: these commands only read and write the files named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from esb.authz import authorize
from esb.cli.common import emit, guard, main_group
from esb.security import certs as c

KEY_TYPES = click.Choice(["ec", "rsa"])


@main_group.group()
def certs() -> None:
    """Certificates: a development CA, node certificates signed by it, and what a certificate says."""


def _issued(ctx: click.Context, issued: c.Issued) -> None:
    emit(ctx, {"certificate": str(issued.cert), "key": str(issued.key), "subject": issued.subject,
               "sha256": issued.fingerprint})  # fmt: skip


@certs.command(name="init-ca")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory for ca.pem and ca.key (created if missing).")  # fmt: skip
@click.option("--name", default="ESB Development CA", show_default=True,
              help="The CA's name: a common name, or an RFC 4514 subject (CN=Region CA,O=Health Bureau).")  # fmt: skip
@click.option("--key", "key_type", type=KEY_TYPES, default="ec", show_default=True,
              help="ec: ECDSA P-256; rsa: RSA 3072 (for peers without ECDSA).")  # fmt: skip
@click.option("--days", type=click.IntRange(min=1), default=c.CA_DAYS, show_default=True, help="Validity in days.")
@click.option("--force", is_flag=True, help="Replace an existing CA (certificates it signed stop being trusted).")
@click.pass_context
@guard
def init_ca(ctx: click.Context, directory: Path, name: str, key_type: c.KeyType, days: int, force: bool) -> None:
    """Make a development CA: a self-signed certificate and its key (mode 0600)."""
    authorize("certs.manage")
    _issued(ctx, c.init_ca(directory, name, key_type=key_type, days=days, force=force))


@certs.command(name="issue")
@click.option("--ca-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory of the CA made by init-ca (ca.pem, ca.key).")  # fmt: skip
@click.option("--name", required=True,
              help="The node name: a common name (node1) or an RFC 4514 subject (CN=pacs1,O=Hospital).")  # fmt: skip
@click.option("--san", "sans", multiple=True, metavar="NAMES",
              help="Subject alternative names, comma list of IP addresses and host names (127.0.0.1,localhost); "
                   "default for server certificates: the common name when it is a host name.")  # fmt: skip
@click.option("--client", "usage", flag_value="client", help="For calling peers only (TLS client).")
@click.option("--server", "usage", flag_value="server", help="For listening only (TLS server).")
@click.option("--both", "usage", flag_value="both", default=True, help="Both (the default: a node calls and listens).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory for NAME.pem and NAME.key (created if missing).")  # fmt: skip
@click.option("--key", "key_type", type=KEY_TYPES, default="ec", show_default=True,
              help="ec: ECDSA P-256; rsa: RSA 3072.")  # fmt: skip
@click.option("--days", type=click.IntRange(min=1), default=c.NODE_DAYS, show_default=True,
              help="Validity in days (never past the CA's).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace existing files of that name.")
@click.pass_context
@guard
def issue(ctx: click.Context, ca_dir: Path, name: str, sans: tuple[str, ...], usage: c.Usage, out_dir: Path,
          key_type: c.KeyType, days: int, force: bool) -> None:  # fmt: skip
    """Issue a node certificate signed by the CA: NAME.pem and NAME.key (mode 0600)."""
    authorize("certs.manage")
    issued = c.issue(ca_dir, name, out_dir, sans=sans, usage=usage, key_type=key_type, days=days, force=force)
    _issued(ctx, issued)


def _row(info: c.CertificateInfo) -> dict[str, Any]:
    return {
        "subject": info.subject,
        "issuer": info.issuer,
        "serial": info.serial,
        "not_before": info.not_before.isoformat(timespec="seconds"),
        "not_after": info.not_after.isoformat(timespec="seconds"),
        "sans": ", ".join(info.sans) or "-",
        "sha256": info.fingerprint,
        "ca": info.is_ca,
        "key": info.key,
        "usage": ", ".join(info.usages) or "-",
    }


@certs.command(name="show")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@guard
def show(ctx: click.Context, file: Path) -> None:
    """Print each certificate of FILE (PEM or DER): subject, issuer, validity, SANs, SHA-256 fingerprint."""
    rows = [_row(c.describe(cert)) for cert in c.read_certificates(file)]
    if ctx.obj.get("json"):
        emit(ctx, rows)
        return
    for number, row in enumerate(rows):
        if number:
            click.echo("")
        emit(ctx, row)
