"""Writing files so that a reader on the other side never sees half of one.

The body goes to a hidden temp file in the target directory (readers skip
hidden files), is synced, then published under its name in one step:
``os.link`` for ``exists=fail`` (fails atomically if the name is taken, where a
check-then-rename would race another writer), ``os.replace`` for ``override``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from pathlib import Path

from adapters.file.options import FileOptions, render, resolve, template_problems, unsafe_name
from esb.components import Producer
from esb.errors import DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.uri import UriError


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable too; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _same_content(path: Path, body: bytes) -> bool:
    try:
        return path.stat().st_size == len(body) and path.read_bytes() == body
    except OSError:
        return False


class FileProducer(Producer):
    def __init__(self, options: FileOptions) -> None:
        problems = template_problems(options.filename)
        if problems:
            raise UriError("; ".join(problems))
        self.options = options
        self.directory = resolve(options.directory)

    def file_name(self, exchange: Exchange) -> str:
        """The relative name for this exchange; a bad one is permanent (retrying renders the same)."""
        try:
            name = render(
                self.options.filename,
                id=exchange.headers.get("esb-delivery-id") or exchange.id,
                message_id=exchange.message_id or "none",
                headers=exchange.headers,
                now=dt.datetime.now(dt.UTC),
            )
        except (KeyError, IndexError) as exc:
            raise PermanentDeliveryError(
                f"file: filename '{self.options.filename}' needs header {exc} which the message does not have"
            ) from None
        why = unsafe_name(name)
        if why is not None:
            raise PermanentDeliveryError(f"file: filename '{self.options.filename}' gave a name that {why}")
        return name

    async def send(self, exchange: Exchange) -> Exchange | None:
        name = self.file_name(exchange)
        await asyncio.to_thread(self._write, self.directory / name, exchange.body)
        return None

    def _write(self, target: Path, body: bytes) -> None:
        folder = target.parent
        if self.options.mkdirs:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise DeliveryError(f"file: directory {folder} does not exist (mkdirs=false)")
        if self.options.exists == "append":
            with open(target, "ab") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            return
        temp = folder / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            with open(temp, "xb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            if self.options.exists == "override":
                os.replace(temp, target)
            else:
                self._publish_new(temp, target, body)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_directory(folder)

    def _publish_new(self, temp: Path, target: Path, body: bytes) -> None:
        try:
            os.link(temp, target)
            return
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system: check, then rename
            if not target.exists():
                os.replace(temp, target)
                return
        if _same_content(target, body):
            return  # our own earlier attempt got this far before the node lost track of it
        raise DeliveryError(f"file: {target.name} already exists in {target.parent} (exists=fail)")
