"""Merge, link, unlink, delete, split, unmerge and review decisions (A1.2, B2.7-B2.9, B2.13).

All logical and reversible: a merged patient keeps its row (status ``merged``),
a split leaves a must-not-link assertion behind so re-matching does not undo
it, and each operation writes what it changed into the history table.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from esb.errors import EmpiError, UnknownPatientError
from esb.journal.store import utcnow
from profiles.empi import store
from profiles.empi.index import FeedResult, IndexCore
from profiles.empi.model import Identifier, PatientRecord
from profiles.empi.schema import assertions, history, reviews
from profiles.empi.store import PatientRow


class LifecycleMixin(IndexCore):
    def _require(self, conn: Connection, identifier: Identifier, *, lock: bool = True) -> PatientRow:
        key = self._known_domain(conn, identifier.domain)
        row = store.patient_by_local(conn, key, identifier.value, lock=lock)
        if row is None or row.status == "deleted":
            raise UnknownPatientError(f"no patient {identifier.value} in domain '{key}'")
        return row

    def merge(self, survivor: PatientRecord, prior: Identifier, *, actor: str) -> FeedResult:
        """ADT^A40: ``prior`` is retired into the survivor; its person's patients follow it."""
        std = self.standardize(survivor)
        with self.engine.begin() as conn:
            result = self._feed(conn, std, actor)
            old = self._require(conn, prior)
            if old.id == result.patient_id:
                raise EmpiError("a patient cannot be merged into itself")
            if old.status == "merged":
                raise EmpiError(f"{prior.value} is already merged")
            target = result.person_id
            assert target is not None
            moved: list[str] = []
            if old.person_id and old.person_id != target:
                for member in store.patients_of(conn, old.person_id):
                    if member.id != old.id:
                        store.update_patient(conn, member.id, person_id=target)
                        moved.append(member.id)
                store.update_person(conn, old.person_id, status="merged", merged_into=target)
            store.update_patient(conn, old.id, status="merged", merged_into=result.patient_id, person_id=target)
            conn.execute(update(assertions).where(assertions.c.patient_a == old.id).values(patient_a=result.patient_id))
            conn.execute(update(assertions).where(assertions.c.patient_b == old.id).values(patient_b=result.patient_id))
            self._refresh(conn, [target])
            store.log(
                conn, "merged", actor, person_id=target, patient_id=old.id, survivor=result.patient_id,
                prior_person=old.person_id, prior_link_kind=old.link_kind, moved=moved,
            )  # fmt: skip
            event = self._event(conn, "merged", result.patient_id, target, other=prior)
            return FeedResult(result.patient_id, target, [*result.events, event])

    def unmerge(self, prior: Identifier, *, actor: str) -> FeedResult:
        """Undo a merge: the prior patient and the patients that followed it get their person back."""
        with self.engine.begin() as conn:
            old = self._require(conn, prior)
            if old.status != "merged":
                raise EmpiError(f"{prior.value} is not merged")
            entry = conn.execute(
                select(history)
                .where(history.c.patient_id == old.id, history.c.op == "merged")
                .order_by(history.c.id.desc())
            ).first()
            survivor = old.merged_into
            person_id = entry.detail.get("prior_person") if entry else None
            if not person_id or person_id == old.person_id:
                person_id = store.new_person(conn)
            for member_id in entry.detail.get("moved", []) if entry else []:
                store.update_patient(conn, member_id, person_id=person_id)
            store.update_patient(
                conn, old.id, status="active", merged_into=None, person_id=person_id, link_kind="manual"
            )
            if survivor:
                store.add_assertion(conn, old.id, survivor, "must_not_link", actor, "unmerge")
            self._refresh(conn, [person_id, old.person_id or ""])
            store.log(conn, "unmerged", actor, person_id=person_id, patient_id=old.id, survivor=survivor)
            event = self._event(conn, "unlinked", old.id, person_id, affected=[old.person_id or ""])
            return FeedResult(old.id, person_id, [event])

    def link(self, a: Identifier, b: Identifier, *, actor: str, kind: str = "asserted") -> FeedResult:
        """ADT^A24 (or a reviewer): ``b`` joins ``a``'s person, and stays there on re-matching."""
        with self.engine.begin() as conn:
            first, second = self._require(conn, a), self._require(conn, b)
            if first.id == second.id:
                raise EmpiError("a patient cannot be linked to itself")
            store.add_assertion(conn, first.id, second.id, "must_link", actor)
            target = first.person_id or store.new_person(conn)
            if first.person_id is None:
                store.update_patient(conn, first.id, person_id=target)
            _, left = self._move(conn, second.id, second.person_id, target, kind, None)
            self._close_review(conn, first.id, second.id, "linked", actor)
            self._refresh(conn, [target, *left])
            store.log(conn, "linked", actor, person_id=target, patient_id=second.id, to=first.id)
            event = self._event(conn, "linked", second.id, target, other=a, affected=left)
            return FeedResult(second.id, target, [event])

    def unlink(self, a: Identifier, b: Identifier, *, actor: str, kind: str = "asserted") -> FeedResult:
        """ADT^A37 (or a reviewer): ``a`` and ``b`` are different people, for good."""
        with self.engine.begin() as conn:
            first, second = self._require(conn, a), self._require(conn, b)
            store.add_assertion(conn, first.id, second.id, "must_not_link", actor)
            person_id = second.person_id
            left: list[str] = []
            if first.person_id is not None and first.person_id == second.person_id:
                person_id, left = self._move(conn, second.id, second.person_id, store.new_person(conn), kind, None)
            self._close_review(conn, first.id, second.id, "distinct", actor)
            self._refresh(conn, [person_id or "", *left])
            store.log(conn, "unlinked", actor, person_id=person_id, patient_id=second.id, from_=first.id)
            event = self._event(conn, "unlinked", second.id, person_id, other=a, affected=left)
            return FeedResult(second.id, person_id, [event])

    def split(self, identifier: Identifier, *, actor: str) -> FeedResult:
        """Take a wrongly linked patient out of its person (B2.7): a new person, must-not-link to the rest."""
        with self.engine.begin() as conn:
            row = self._require(conn, identifier)
            others = [p for p in store.patients_of(conn, row.person_id) if p.id != row.id] if row.person_id else []
            if not others:
                raise EmpiError(f"{identifier.value} is alone in its person; nothing to split")
            for other in others:
                store.add_assertion(conn, other.id, row.id, "must_not_link", actor, "split")
            person_id, left = self._move(conn, row.id, row.person_id, store.new_person(conn), "manual", None)
            self._refresh(conn, [person_id, *left])
            store.log(conn, "split", actor, person_id=person_id, patient_id=row.id, from_person=row.person_id)
            event = self._event(conn, "unlinked", row.id, person_id, affected=left)
            return FeedResult(row.id, person_id, [event])

    def delete(self, identifier: Identifier, *, actor: str) -> FeedResult:
        """ADT^A23/A29: the patient is marked deleted (kept, and restorable by a new feed)."""
        with self.engine.begin() as conn:
            row = self._require(conn, identifier)
            store.update_patient(conn, row.id, status="deleted")
            self._refresh(conn, [row.person_id or ""])
            store.log(conn, "deleted", actor, person_id=row.person_id, patient_id=row.id)
            event = self._event(conn, "deleted", row.id, row.person_id)
            return FeedResult(row.id, row.person_id, [event])

    def _close_review(self, conn: Connection, a: str, b: str, status: str, actor: str) -> None:
        first, second = sorted((a, b))
        conn.execute(
            update(reviews)
            .where(reviews.c.patient_a == first, reviews.c.patient_b == second, reviews.c.status == "open")
            .values(status=status, decided_at=utcnow(), decided_by=actor)
        )
