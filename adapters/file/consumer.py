"""Polling a directory that several engine nodes may share.

A node claims a file by renaming it into ``.inprogress/<node>/`` before reading
it: a rename is atomic, so exactly one node wins and the others see the file
gone. The file leaves ``.inprogress/`` only once the engine holds it (journal
commit, or the route's end with ``wait=true``); a refused file goes back for
the next scan. Each node touches ``.inprogress/<node>/.alive`` as a heartbeat;
files of a node whose heartbeat is older than ``lease`` (it died) and of this
node's previous run are put back, so a crash loses nothing. A crash between
the journal commit and the move means the file is read once more: at least
once, like every consumer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from adapters.file.options import INPROGRESS, FileOptions, resolve, subfolder
from esb.components import Consumer, Handler, Outcome
from esb.exchange import Exchange

log = logging.getLogger("esb.adapters.file")

HEARTBEAT = ".alive"
#: between the claim token and the quoted relative path in a claimed file's name
SEPARATOR = "__"


def node_folder_name(node_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", node_id).lstrip(".") or "node"


def claimed_name(token: str, relative: str) -> str:
    """Name in .inprogress/: unique per claim, and the original path is recoverable."""
    return f"{token}{SEPARATOR}{quote(relative, safe='')}"


def original_name(claimed: str) -> str:
    token, sep, rest = claimed.partition(SEPARATOR)
    return unquote(rest) if sep else claimed


def move_no_clobber(src: Path, dst: Path, token: str) -> Path:
    """Move ``src`` to ``dst``, or beside it under a unique name if ``dst`` exists.

    ``os.link`` fails atomically when the target exists, which ``os.rename``
    (it overwrites) cannot; file systems without hard links fall back to a
    checked move.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    for candidate in (dst, dst.with_name(f"{dst.stem}.{token}{dst.suffix}")):
        try:
            os.link(src, candidate)
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network shares), or another device
            if candidate.exists():
                continue
            shutil.move(src, candidate)
            return candidate
        os.unlink(src)
        return candidate
    raise FileExistsError(f"{dst} and its alternative name both exist")


@dataclass
class Claimed:
    token: str
    relative: str
    original: Path
    path: Path
    mtime: float
    body: bytes | None = None
    read_error: OSError | None = None


class FileConsumer(Consumer):
    def __init__(self, options: FileOptions, handler: Handler, route_id: str, node_id: str) -> None:
        self.options = options
        self.handler = handler
        self.route_id = route_id
        self.directory = resolve(options.directory)
        self.inprogress = self.directory / INPROGRESS
        self.mine = self.inprogress / node_folder_name(node_id)
        self.done = subfolder(self.directory, options.move) if options.move else None
        self.failed = subfolder(self.directory, options.error)
        self.skip = {self.inprogress, self.failed} | ({self.done} if self.done else set())
        #: files this node took and handed to the engine (tests and metrics read it)
        self.taken = 0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name=f"file-poll-{self.route_id}"),
            asyncio.create_task(self._keeper_loop(), name=f"file-keeper-{self.route_id}"),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.to_thread(self._leave)

    # -- loops -------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if await self.poll():
                    continue  # a full batch went through: more files are waiting, no pause
            except Exception as exc:
                log.error("route %s: scanning %s failed: %s", self.route_id, self.directory, type(exc).__name__)
                log.debug("route %s: scan error", self.route_id, exc_info=True)
            await self._sleep(self.options.poll)

    async def _keeper_loop(self) -> None:
        """Heartbeat and recovery of dead nodes, apart from polling so a long route cannot starve it."""
        while not self._stopping.is_set():
            await self._sleep(self.options.lease / 4)
            if self._stopping.is_set():
                return
            try:
                await asyncio.to_thread(self._keep)
            except Exception as exc:
                log.error("route %s: heartbeat in %s failed: %s", self.route_id, self.inprogress, type(exc).__name__)

    async def poll(self) -> bool:
        """One scan: claim, hand over and move each file in turn; True when more may be waiting."""
        paths = await asyncio.to_thread(self._scan)
        before = self.taken
        for path in paths:
            if self._stopping.is_set():
                return False
            claimed = await asyncio.to_thread(self._claim, path)
            if claimed is not None:
                await self._hand_over(claimed)
        return len(paths) >= self.options.batch and self.taken > before

    async def _hand_over(self, claimed: Claimed) -> None:
        if claimed.body is None:
            log.warning("route %s: a claimed file cannot be read (%s); moving it to %s",
                        self.route_id, type(claimed.read_error).__name__, self.options.error)  # fmt: skip
            log.debug("route %s: cannot read %s: %s", self.route_id, claimed.relative, claimed.read_error)
            await asyncio.to_thread(self._finish, claimed, self.failed)
            return
        exchange = Exchange(
            body=claimed.body,
            headers={
                "file-name": claimed.relative,
                "file-path": str(claimed.original),
                "file-size": str(len(claimed.body)),
                "file-modified": dt.datetime.fromtimestamp(claimed.mtime, dt.UTC).isoformat(),
                "charset": self.options.charset,
            },
        )
        try:
            outcome = await self.handler(exchange, self.options.wait)
        except Exception as exc:
            outcome = Outcome(None, "failed", error=exc)
        if outcome.status == "failed" and outcome.message_id is None:
            # The engine does not hold it: back it goes, to be read on a later scan.
            log.warning("route %s: a file was not taken (%s); it stays for the next scan",
                        self.route_id, type(outcome.error).__name__)  # fmt: skip
            await asyncio.to_thread(self._put_back, claimed)
            return
        self.taken += 1
        target = self.failed if outcome.status == "failed" else self.done
        await asyncio.to_thread(self._finish, claimed, target)

    # -- file system work (runs in threads) --------------------------------------

    def _prepare(self) -> None:
        self.mine.mkdir(parents=True, exist_ok=True)
        self._recover(self.mine)  # left by this node's previous run: nothing of ours is in flight yet
        self._keep()

    def _keep(self) -> None:
        self.mine.mkdir(parents=True, exist_ok=True)
        (self.mine / HEARTBEAT).touch()
        now = time.time()
        for folder in self.inprogress.iterdir():
            if folder == self.mine or not folder.is_dir():
                continue
            try:
                beat = (folder / HEARTBEAT).stat().st_mtime
            except FileNotFoundError:
                try:
                    beat = folder.stat().st_mtime
                except FileNotFoundError:
                    continue
            if now - beat > self.options.lease:
                log.info("route %s: node folder %s is stale; putting its files back", self.route_id, folder.name)
                self._recover(folder)
                (folder / HEARTBEAT).unlink(missing_ok=True)
                try:
                    folder.rmdir()
                except OSError:
                    pass  # a file arrived meanwhile, or another node removed it first

    def _recover(self, folder: Path) -> None:
        for entry in folder.iterdir():
            if entry.name == HEARTBEAT or not entry.is_file():
                continue
            try:
                move_no_clobber(entry, self.directory / original_name(entry.name), uuid.uuid4().hex[:8])
            except FileNotFoundError:
                continue  # another node recovered it first

    def _leave(self) -> None:
        """On a clean stop, remove this node's folder if nothing is left in it."""
        try:
            if [p.name for p in self.mine.iterdir()] == [HEARTBEAT]:
                (self.mine / HEARTBEAT).unlink()
                self.mine.rmdir()
        except OSError:
            pass

    def _scan(self) -> list[Path]:
        self.mine.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - self.options.min_age
        found: list[tuple[float, str, Path]] = []
        folders = [self.directory]
        while folders:
            folder = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # writers' temp files and the engine's own folders
                try:
                    if entry.is_dir():
                        if self.options.recursive and Path(entry.path) not in self.skip:
                            folders.append(Path(entry.path))
                        continue
                    if not entry.is_file() or not fnmatch.fnmatch(entry.name, self.options.pattern):
                        continue
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue  # taken by another node while we looked
                if mtime <= cutoff:
                    found.append((mtime, entry.path, Path(entry.path)))
        found.sort()
        return [path for _, _, path in found[: self.options.batch]]

    def _claim(self, path: Path) -> Claimed | None:
        token = uuid.uuid4().hex[:12]
        relative = path.relative_to(self.directory).as_posix()
        target = self.mine / claimed_name(token, relative)
        try:
            mtime = path.stat().st_mtime
            os.rename(path, target)
        except FileNotFoundError:
            return None  # another node won the rename
        claimed = Claimed(token, relative, path, target, mtime)
        try:
            claimed.body = target.read_bytes()
        except OSError as exc:
            claimed.read_error = exc
        return claimed

    def _put_back(self, claimed: Claimed) -> None:
        move_no_clobber(claimed.path, claimed.original, claimed.token)

    def _finish(self, claimed: Claimed, folder: Path | None) -> None:
        try:
            if folder is None:
                claimed.path.unlink()
            else:
                move_no_clobber(claimed.path, folder / claimed.relative, claimed.token)
        except FileNotFoundError:
            log.warning("route %s: a claimed file was put back by another node (lease %gs too short?)",
                        self.route_id, self.options.lease)  # fmt: skip
