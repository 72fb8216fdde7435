"""EMPI standardization cost per record: it runs on every ADT message, before matching.

Records are generated from a fixed seed (hanzi and pinyin names, traditional
characters, 18- and 15-digit IDs, phones in several spellings, dates in
staging-table formats), all distinct so that the first pass shows the cost
with cold per-string caches; the second pass over the same records shows the
steady state of a region where names repeat. The database of the run is not
used.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from bench.runner import Figure, Run, percentiles, rate, register
from profiles.empi.model import Address, PatientRecord, PersonName
from profiles.empi.standardize import CodeMaps, standardize
from profiles.empi.standardize.resident_id import check_character

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚"
    "卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔单區張陳劉"
)
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红梅文玉兰海燕鹏飞宇浩然思雨欣怡子涵梓轩雅琪乐東華國"
)


def _record(rng: random.Random, i: int) -> PatientRecord:
    family = rng.choice(_SURNAMES)
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    year, month, day = rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28)
    first17 = f"{rng.randint(110000, 659999)}{year:04d}{month:02d}{day:02d}{i % 1000:03d}"
    national_id = first17 + check_character(first17)
    if i % 7 == 0:
        national_id = f"{first17[:6]}{first17[8:]}"  # legacy 15-digit form
    birth = rng.choice((f"{year:04d}{month:02d}{day:02d}", f"{year}-{month:02d}-{day:02d}", f"{year}/{month}/{day}"))
    mobile = f"1{rng.choice('3578')}{rng.randint(0, 999999999):09d}"
    phone = rng.choice(
        (mobile, f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}", f"010-{rng.randint(20000000, 89999999)}")
    )
    names: tuple[PersonName, ...] = (PersonName(family, f" {given} "),)
    if i % 5 == 0:
        names = (PersonName("WANG", "XIAOMING", representation="A"), PersonName(family, given, representation="I"))
    return PatientRecord(
        names=names,
        sex=rng.choice(("M", "F", "1", "2", "男", "女")),
        birth_date=birth,
        national_id=national_id,
        phones=(phone,),
        addresses=(
            Address(city=rng.choice(("北京市", "上海", "廣州市")), postal_code=f"{rng.randint(100000, 859999)}"),
        ),
        marital_status=rng.choice(("20", "M", "10", "")),
        ethnic_group=rng.choice(("01", "汉族", "1", "")),
        source="HIS^H1",
    )


@register("standardize", n=20000, quick_n=200, summary="EMPI standardize(): microseconds per record, cold and warm")
def standardize_bench(run: Run) -> Iterator[Figure]:
    rng = random.Random(20240615)
    records = [_record(rng, i) for i in range(run.n)]
    codes = CodeMaps.default()
    standardize(records[0], codes=codes)  # converters and dictionaries loaded outside the timing
    for label in ("cold", "warm"):
        samples: list[float] = []
        started = time.perf_counter()
        for record in records:
            t0 = time.perf_counter()
            standardize(record, codes=codes)
            samples.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        yield Figure(f"records_per_s_{label}", rate(len(records), elapsed), "records/s")
        yield Figure(f"us_per_record_{label}", round(elapsed / len(records) * 1e6, 1), "us")
        yield from percentiles(samples, f"latency_{label}")
