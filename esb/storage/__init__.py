"""Blob storage for documents: an interface (:class:`BlobStore`) and a local-disk implementation.

S3 and storage tiers are meant to come as further implementations of the same
interface; callers only ever hold a ``BlobStore``.
"""

from esb.errors import BlobNotFoundError, StorageError
from esb.storage.base import CHUNK_SIZE, BlobInfo, BlobStore, StoredBlob, check_key, copy_hashing
from esb.storage.local import LocalDiskStore

__all__ = [
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobNotFoundError",
    "BlobStore",
    "LocalDiskStore",
    "StorageError",
    "StoredBlob",
    "check_key",
    "copy_hashing",
]
