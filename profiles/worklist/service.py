"""``service:worklist``: the Modality Worklist hosted on the bus (IHE SWF, as the Order Filler's worklist side).

- ``worklist/order``: an ORM^O01 or OMI^O23 (RAD-4 Procedure Scheduled, from
  the RIS or HIS over MLLP) writes, changes or takes off the worklist items
  of its Scheduled Procedure Steps (:mod:`profiles.worklist.orders`). A
  message that cannot be used raises :class:`~esb.errors.Hl7Error`, which the
  ``mllp:`` consumer answers AE/AR with ERR; the journal keeps it.
- The ``dicom:`` adapter answers Modality Worklist C-FIND (RAD-5) and takes
  Modality Performed Procedure Steps (RAD-6/RAD-7) with the service's
  ``worklist`` (option ``worklist`` of the listening route).

The worklist lives in the engine's database, so every node answers the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from esb.components import Service
from esb.exchange import Exchange
from profiles.worklist.orders import parse_order
from profiles.worklist.store import Worklist

log = logging.getLogger("esb.worklist")


class WorklistService(Service):
    operations: ClassVar[tuple[str, ...]] = ("order",)

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._worklist: Worklist | None = None

    @property
    def worklist(self) -> Worklist:
        if self._worklist is None:
            journal = self.context.journal
            if journal is None:
                raise RuntimeError("service:worklist needs the engine's database")
            self._worklist = Worklist(journal.engine)
        return self._worklist

    async def start(self) -> None:
        await asyncio.to_thread(lambda: self.worklist)

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        if operation != "order":
            raise ValueError(f"service:worklist has no operation {operation!r} (order)")
        order = parse_order(exchange.body or b"")
        touched = await asyncio.to_thread(self.worklist.apply, order)
        log.info("worklist: order %s (%s) touched %d scheduled step(s)", order.placer_order or order.filler_order,
                 order.control, touched)  # fmt: skip
        exchange.headers["worklist-steps"] = str(touched)
        return None
