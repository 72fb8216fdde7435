"""A demo hospital database for the example routes: a patient table, its view V_HIS_PATIENTS, a staging table.

    .venv/bin/python routes/examples/his_demo.py            # into ${HIS_DB_URL:-sqlite:///var/his.db}
    .venv/bin/python routes/examples/his_demo.py --change 5 # later: 5 patients change (the next ETL run loads them)
    .venv/bin/python routes/examples/his_demo.py --drop

Names, dates and ID card numbers are made up. One patient in fifty has an
impossible birth date, so the ETL report shows a reject.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
from pathlib import Path

import sqlalchemy as sa

from adapters.table.database import staging_engine

metadata = sa.MetaData()
patients = sa.Table(
    "his_patient",
    metadata,
    sa.Column("patient_no", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("sex", sa.String(8)),  # GB/T 2261.1: 1 male, 2 female
    sa.Column("birth_date", sa.String(32)),
    sa.Column("id_card", sa.String(18)),
    sa.Column("phone", sa.String(20)),
    sa.Column("address", sa.String(200)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
staging = sa.Table(
    "his_patient_staging",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("patient_no", sa.String(32), nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("sex", sa.String(8)),
    sa.Column("birth_date", sa.String(32)),
    sa.Column("id_card", sa.String(18)),
    sa.Column("phone", sa.String(20)),
    sa.Column("address", sa.String(200)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # new -> done | failed
    sa.Column("error_text", sa.String(400)),
    sa.Column("processed_at", sa.DateTime),
    sa.Column("claimed_by", sa.String(64)),  # used where the database has no SKIP LOCKED (SQLite)
    sa.Column("claimed_at", sa.DateTime),
)
VIEW = "V_HIS_PATIENTS"
FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"]


def person(n: int, now: dt.datetime) -> dict[str, object]:
    rng = random.Random(n)
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(30_000))
    return {
        "patient_no": f"H{n:07d}",
        "name": rng.choice(FAMILY) + rng.choice(GIVEN),
        "sex": rng.choice("12"),
        "birth_date": "1990-02-30" if n % 50 == 0 else born.isoformat(),
        "id_card": None,
        "phone": f"13{rng.randrange(10**9):09d}",
        "address": "北京市东城区东长安街1号",
        "created_at": now - dt.timedelta(days=3650 - n),
        "updated_at": now - dt.timedelta(days=3650 - n, hours=-1),
    }


def create(url: str, rows: int = 200, staged: int = 5) -> None:
    """The tables and the view, with ``rows`` patients and ``staged`` staging rows."""
    engine = staging_engine(url)
    now = dt.datetime.now().replace(microsecond=0)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE VIEW {VIEW} AS SELECT * FROM his_patient"))
        conn.execute(patients.insert(), [person(n, now) for n in range(1, rows + 1)])
        fresh = [person(100_000 + n, now) for n in range(1, staged + 1)]
        conn.execute(staging.insert(), [{**{k: v for k, v in r.items() if k != "created_at"}, "id": i, "status": "new"}
                                        for i, r in enumerate(fresh, start=1)])  # fmt: skip


def change(url: str, count: int) -> int:
    """Change ``count`` patients now (a new phone): the next ETL run loads them again."""
    now = dt.datetime.now().replace(microsecond=0)
    with staging_engine(url).begin() as conn:
        keys = conn.execute(sa.select(patients.c.patient_no).limit(count)).scalars().all()
        for key in keys:
            conn.execute(patients.update().where(patients.c.patient_no == key).values(phone="13900000000",
                                                                                      updated_at=now))  # fmt: skip
    return len(keys)


def drop(url: str) -> None:
    engine = staging_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP VIEW IF EXISTS {VIEW}"))
    metadata.drop_all(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("HIS_DB_URL", "sqlite:///var/his.db"))
    parser.add_argument("--rows", type=int, default=200, help="patients in his_patient")
    parser.add_argument("--staging", type=int, default=5, help="new rows in his_patient_staging")
    parser.add_argument("--change", type=int, default=0, help="only change this many patients (updated_at now)")
    parser.add_argument("--drop", action="store_true")
    args = parser.parse_args()
    if args.url.startswith("sqlite:///"):
        Path(args.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if args.drop:
        drop(args.url)
    elif args.change:
        print(f"changed {change(args.url, args.change)} patients")
    else:
        create(args.url, args.rows, args.staging)
        print(f"{args.url}: {args.rows} patients in his_patient ({VIEW}), {args.staging} rows in his_patient_staging")


if __name__ == "__main__":
    main()
