"""The durable message journal and delivery queue (SQLAlchemy 2, any dialect)."""

from esb.journal.store import Journal, NewDelivery, utcnow

__all__ = ["Journal", "NewDelivery", "utcnow"]
