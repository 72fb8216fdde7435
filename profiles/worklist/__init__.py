"""Modality Worklist (IHE SWF: RAD-4 Procedure Scheduled in, RAD-5 Query Modality Worklist out)."""
