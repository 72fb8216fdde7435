"""``file:`` on a real file system with real engines: in -> route -> out, shared directories, recovery."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.file import FileConsumer, FileOptions
from adapters.file.consumer import claimed_name
from esb.components import Outcome
from esb.errors import DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.journal.schema import messages
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.runtime.engine import Engine
from esb.settings import Settings
from esb.uri import Duration
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for


def journal(engine: Engine, route_id: str) -> list[dict[str, Any]]:
    query = sa.select(messages.c.status, messages.c.headers, messages.c.body).where(messages.c.route_id == route_id)
    with engine.journal.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def drop(directory: Path, name: str, body: bytes) -> Path:
    """Deliver a file the way a careful sender does: hidden temp file, then rename."""
    target = directory / name
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.part"
    temp.write_bytes(body)
    os.replace(temp, target)
    return target


def route(route_id: str, source: str, *steps: str) -> str:
    lines = "\n".join(f"    - {step}" for step in steps) or "    - log: {message: got a file}"
    return f'route:\n  id: {route_id}\n  from: "{source}"\n  steps:\n{lines}\n'


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


async def test_file_in_route_file_out(
    tmp_path: Path, db_url: str, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    write_routes(
        tmp_path / "routes",
        {
            "pipe": route(
                "pipe",
                f"file://{inbox}?poll=50ms&pattern=*.hl7&charset=iso-8859-1",
                "transform: {python: transforms.common:upper}",
                'to: "file://' + str(outbox) + '?filename={header[file-name]}"',
                'to: "file:rel-out?filename=copy-{header[file-name]}"',
            )
        },
    )
    drop(inbox, "skipped.txt", b"not matched by the pattern")
    await start_engine(db_url=db_url)
    drop(inbox, "a.hl7", b"msh|adt")
    await wait_for(lambda: (outbox / "a.hl7").exists() and (tmp_path / "rel-out" / "copy-a.hl7").exists())
    assert (outbox / "a.hl7").read_bytes() == b"MSH|ADT"
    assert (tmp_path / "rel-out" / "copy-a.hl7").read_bytes() == b"MSH|ADT"
    assert (inbox / ".done" / "a.hl7").read_bytes() == b"msh|adt"
    assert visible(inbox) == ["skipped.txt"]
    assert [p.name for p in outbox.iterdir()] == ["a.hl7"]  # no temp file left behind
    assert sorted(p.name for p in (inbox / ".inprogress" / "test-node").iterdir()) == [".alive"]


async def test_wait_moves_failures_to_error_and_empty_move_deletes(tmp_path: Path, start_engine: StartEngine) -> None:
    strict, gone = tmp_path / "strict", tmp_path / "gone"
    write_routes(
        tmp_path / "routes",
        {
            "strict": route(
                "strict",
                f"file://{strict}?poll=50ms&wait=true&move=archive&error=rejected",
                'validate: {xpath: "/order[@id]"}',
            ),
            "gone": route("gone", f"file://{gone}?poll=50ms&move="),
        },
    )
    engine = await start_engine()
    drop(strict, "good.xml", b'<order id="1"/>')
    drop(strict, "bad.xml", b"<order/>")
    drop(gone, "x.txt", b"x")
    archive, rejected = strict / "archive", strict / "rejected"
    await wait_for(lambda: (archive / "good.xml").exists() and (rejected / "bad.xml").exists())
    await wait_for(lambda: not (gone / "x.txt").exists() and len(journal(engine, "gone")) == 1)
    assert visible(gone) == [] and not (gone / ".done").exists()
    assert sorted(m["status"] for m in journal(engine, "strict")) == ["failed", "processed"]
    assert visible(strict) == ["archive", "rejected"]

    drop(strict, "good.xml", b'<order id="2"/>')  # the same name again: the archived one is kept
    await wait_for(lambda: len(list(archive.iterdir())) == 2)
    bodies = sorted(p.read_bytes() for p in archive.iterdir())
    assert bodies == [b'<order id="1"/>', b'<order id="2"/>']
    assert any(re.fullmatch(r"good\.[0-9a-f]{12}\.xml", p.name) for p in archive.iterdir())


async def test_min_age_leaves_a_file_being_written(tmp_path: Path, start_engine: StartEngine) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_routes(tmp_path / "routes", {"slow": route("slow", f"file://{inbox}?poll=20ms&min_age=500ms")})
    engine = await start_engine()
    chunks = [f"segment {i}\r".encode() for i in range(6)]
    with open(inbox / "big.hl7", "wb") as out:
        for chunk in chunks:  # a slow writer: the file is never 500 ms old until it is complete
            out.write(chunk)
            out.flush()
            await asyncio.sleep(0.15)
            assert (inbox / "big.hl7").exists(), "a half-written file was taken"
    await wait_for(lambda: len(journal(engine, "slow")) == 1)
    assert journal(engine, "slow")[0]["body"] == b"".join(chunks)


async def test_two_engines_on_one_directory_take_each_file_once(
    tmp_path: Path, db_url: str, start_engine: StartEngine
) -> None:
    inbox = tmp_path / "in"
    write_routes(tmp_path / "routes", {"shared": route("shared", f"file://{inbox}?poll=10ms&batch=3")})
    first = await start_engine(db_url=db_url, node_id="node-a")
    second = await start_engine(db_url=db_url, node_id="node-b")
    names = [f"m{i:03d}.txt" for i in range(40)]
    for name in names:
        drop(inbox, name, name.encode())
    await wait_for(lambda: len(list((inbox / ".done").glob("*"))) == 40 if (inbox / ".done").exists() else False)
    await wait_for(lambda: len(journal(first, "shared")) == 40)
    rows = journal(first, "shared")
    assert sorted(r["headers"]["file-name"] for r in rows) == names
    assert all(r["body"] == r["headers"]["file-name"].encode() for r in rows)
    consumers = [e.routes["shared"].consumer for e in (first, second)]
    taken = [c.taken for c in consumers if isinstance(c, FileConsumer)]
    assert sum(taken) == 40 and min(taken) > 0, taken
    assert visible(inbox) == []
    for node in ("node-a", "node-b"):
        assert [p.name for p in (inbox / ".inprogress" / node).iterdir()] == [".alive"]


async def test_leftovers_of_dead_nodes_and_of_this_node_are_recovered(
    tmp_path: Path, start_engine: StartEngine
) -> None:
    inbox = tmp_path / "in"
    own, dead, live = (inbox / ".inprogress" / n for n in ("test-node", "dead-node", "live-node"))
    for folder in (own, dead, live):
        folder.mkdir(parents=True)
        (folder / ".alive").touch()
    long_ago = time.time() - 7200
    os.utime(dead / ".alive", (long_ago, long_ago))
    (own / claimed_name("a1", "own.txt")).write_bytes(b"own, from this node's last run")
    drop(inbox, "own.txt", b"a new file of the same name")
    (dead / claimed_name("b2", "sub/dead.txt")).write_bytes(b"from a dead node")
    (live / claimed_name("c3", "live.txt")).write_bytes(b"a live node is on it")
    write_routes(tmp_path / "routes", {"rec": route("rec", f"file://{inbox}?poll=50ms&recursive=true&lease=1h")})
    engine = await start_engine()
    await wait_for(lambda: len(journal(engine, "rec")) == 3)
    rows = {r["headers"]["file-name"]: r["body"] for r in journal(engine, "rec")}
    assert rows.pop("sub/dead.txt") == b"from a dead node"
    assert rows.pop("own.txt") in (b"own, from this node's last run", b"a new file of the same name")
    ((renamed, body),) = rows.items()
    assert re.fullmatch(r"own\.[0-9a-f]{8}\.txt", renamed), renamed
    assert body in (b"own, from this node's last run", b"a new file of the same name")
    assert not dead.exists()
    assert [p.name for p in live.iterdir() if p.name != ".alive"] == [claimed_name("c3", "live.txt")]


async def test_a_refused_file_stays_for_the_next_scan(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    drop(inbox, "a.txt", b"payload")
    seen: list[bytes] = []

    async def refuse_once(exchange: Exchange, wait: bool) -> Outcome:
        seen.append(exchange.body)
        if len(seen) == 1:
            return Outcome(None, "failed", error=RuntimeError("journal unavailable"))
        return Outcome("m1", "accepted", exchange)

    consumer = FileConsumer(FileOptions(directory=str(inbox)), refuse_once, "r", "n1")
    await consumer.poll()
    assert visible(inbox) == ["a.txt"] and (inbox / "a.txt").read_bytes() == b"payload"
    await consumer.poll()
    assert seen == [b"payload", b"payload"]
    assert visible(inbox) == [] and (inbox / ".done" / "a.txt").read_bytes() == b"payload"


async def test_producer_writes_atomically_and_honours_exists(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    out = tmp_path / "out"
    context = EngineContext(make_settings())
    body = os.urandom(1 << 20)
    producer = context.producer(f"file://{out}")
    sizes: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # a reader on the other side: must never see a partial file
        while not stop.is_set():
            for path in out.glob("[!.]*") if out.exists() else ():
                try:
                    sizes.append(len(path.read_bytes()))
                except FileNotFoundError:
                    pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(20):
            exchange = Exchange(body=body, message_id="m1", headers={"esb-delivery-id": f"d{i:02d}"})
            await producer.send(exchange)
    finally:
        stop.set()
        watcher.join()
    assert sizes and set(sizes) == {len(body)}
    assert sorted(p.name for p in out.iterdir()) == [f"m1-d{i:02d}.msg" for i in range(20)]

    def named(name: str, data: bytes) -> Exchange:
        return Exchange(body=data, headers={"name": name})

    fail = context.producer(f"file://{out}/sub?filename={{header[name]}}")
    await fail.send(named("x.txt", b"one"))
    await fail.send(named("x.txt", b"one"))  # a retry that finds its own bytes is done
    with pytest.raises(DeliveryError) as excinfo:
        await fail.send(named("x.txt", b"two"))
    assert not isinstance(excinfo.value, PermanentDeliveryError) and "already exists" in str(excinfo.value)
    override = context.producer(f"file://{out}/sub?filename={{header[name]}}&exists=override")
    await override.send(named("x.txt", b"two"))
    append = context.producer(f"file://{out}/sub?filename={{header[name]}}&exists=append")
    await append.send(named("x.txt", b"+three"))
    assert (out / "sub" / "x.txt").read_bytes() == b"two+three"
    for bad in ("../escape.txt", "/etc/passwd", ".hidden", "a//b"):
        with pytest.raises(PermanentDeliveryError):
            await fail.send(named(bad, b"x"))
    with pytest.raises(PermanentDeliveryError, match="header 'name'"):
        await fail.send(Exchange(body=b"x"))
    strict = context.producer(f"file://{out}/none/deeper?mkdirs=false")
    with pytest.raises(DeliveryError, match="does not exist"):
        await strict.send(Exchange(body=b"x"))
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["x.txt"]
    await context.close()


def lint_messages(tmp_path: Path, settings: Settings, routes: dict[str, str]) -> list[str]:
    write_routes(tmp_path / "routes", routes)
    return [str(e) for e in lint([tmp_path / "routes"], EngineContext(settings)).errors]


def test_lint_reports_bad_file_options(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    errors = lint_messages(
        tmp_path,
        make_settings(),
        {
            "typo": route("typo", "file:///x?pol=1s"),
            "paths": route("paths", "file:///y?pattern=sub/*.xml&move=.err&error=.err&charset=klingon"),
            "sides": route("sides", "file:///z?filename=a.txt&lease=1s&poll=2s", 'to: "file:///o?recursive=true"'),
            "template": route("template", "file:///w", 'to: "file:///o?filename={id.__class__}/{header[x]}"'),
            "same1": route("same1", "file:///shared"),
            "same2": route("same2", "file:///shared/./"),
            "host": route("host", "file://server/share"),
        },
    )
    text = "\n".join(errors)
    assert re.search(r"typo\.yaml:3:20: .*unknown option 'pol' \(did you mean 'poll'\?\)", text), text
    assert "pattern 'sub/*.xml' must match file names, not paths" in text
    assert "move and error must be different folders (both '.err')" in text
    assert "charset 'klingon' is not known" in text
    assert "option 'filename' has no effect in 'from:'" in text
    assert "lease (1s) must be longer than poll (2s)" in text
    assert "option 'recursive' has no effect in 'to:'" in text
    assert "unknown field '{id.__class__}'" in text
    assert "listens where route 'same1' already does" in text
    assert "file URIs take no host ('server')" in text
    assert len(errors) == 10, errors


def test_options_have_docs() -> None:
    import dataclasses

    undocumented = [f.name for f in dataclasses.fields(FileOptions) if not f.metadata.get("doc")]
    assert undocumented == []
    assert FileOptions(directory="x").poll == Duration(1.0)
