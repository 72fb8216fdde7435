"""What a ``timer:`` route asks the collection for, in headers; dates as the CLI and headers spell them."""

from __future__ import annotations

import datetime as dt

import pytest

from profiles.dicom.collect import CollectRequest, dicom_date

TODAY = dt.date(2026, 11, 30)


def test_dates_absolute_and_relative() -> None:
    assert dicom_date("2026-11-01") == dicom_date("20261101") == dicom_date(dt.date(2026, 11, 1)) == "20261101"
    assert dicom_date("0d", TODAY) == "20261130"
    assert dicom_date("7d", TODAY) == "20261123"
    for wrong in ("yesterday", "2026-13-01", "36h", "-1d"):
        with pytest.raises(ValueError, match="is not a date"):
            dicom_date(wrong, TODAY)


def test_request_from_headers_with_defaults() -> None:
    request = CollectRequest.from_headers({"dicom-collect-from": "PACS1"}, TODAY)
    assert request == CollectRequest("PACS1", "20261129", "20261130", "move", None)
    full = CollectRequest.from_headers(
        {"dicom-collect-from": "PACS1", "dicom-collect-since": "2026-11-01", "dicom-collect-until": "2d",
         "dicom-collect-method": "get", "dicom-collect-budget": "2h"}, TODAY,
    )  # fmt: skip
    assert full == CollectRequest("PACS1", "20261101", "20261128", "get", 7200.0)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "must name the remote AE"),
        ({"dicom-collect-from": "P", "dicom-collect-method": "push"}, "move or get"),
        ({"dicom-collect-from": "P", "dicom-collect-budget": "soon"}, "dicom-collect-budget"),
        ({"dicom-collect-from": "P", "dicom-collect-since": "last week"}, "is not a date"),
    ],
)
def test_bad_requests_say_what_is_wrong(headers: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CollectRequest.from_headers(headers, TODAY)
