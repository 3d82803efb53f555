"""The st2 key-value datastore as packs see it through ``action_service``/``sensor_service``.

``Datastore`` stands for st2api and its database, shared by every service in one test;
``DatastoreService`` is st2common.services.datastore.BaseDatastoreService: the same key
prefixing (``local=True`` puts ``<pack>.<ClassName>:`` in front of the name), the same
``str()`` of every value, the same return values (``get_value`` of a missing key is None,
``delete_value`` of a missing key is False), and the API's paging rule (a listing without a
limit returns at most ``api.max_page_size`` = 100 keys; a larger limit is refused for a
non-admin user when RBAC is on).

One simplification: a key past its TTL disappears at once, where MongoDB's TTL monitor takes
up to a minute. Code must not rely on either.
"""

from __future__ import annotations

import binascii
import threading
import time
from collections import Counter
from typing import Callable, Dict, List, Optional

SYSTEM_SCOPE = "system"
SEPARATOR = ":"


class KeyValuePair:
    """st2client.models.keyvalue.KeyValuePair, the fields packs read."""

    def __init__(self, name, value, secret=False, expire_timestamp=None, scope=SYSTEM_SCOPE):
        self.id = name
        self.name = name
        self.value = value
        self.secret = secret
        self.encrypted = secret
        self.expire_timestamp = expire_timestamp
        self.scope = scope

    def __repr__(self):
        return "<KeyValuePair name=%s,value=%s>" % (self.name, self.value)


class DatastoreError(Exception):
    """What st2client raises on an API error (HTTP 4xx)."""


# Not AES: a stand-in with the shape that matters (hex, and only what _ciphertext made
# decrypts), so that decrypting a value stored without --encrypt fails here as in st2.
_SEAL = b"st2harness-sealed"


def _ciphertext(value: str) -> str:
    # st2 returns the AES ciphertext, hex-encoded, when decrypt is false.
    return (_SEAL + value.encode("utf-8")[::-1]).hex().upper()


def symmetric_decrypt(ciphertext: str) -> str:
    """st2common.util.crypto.symmetric_decrypt's failures: a value that is not hex raises
    binascii.Error ("Odd-length string", "Non-hexadecimal digit found") from unhexlify, as
    st2 does for a ``secret: true`` config value whose key was set without ``--encrypt``;
    hex that is no ciphertext raises ValueError."""
    raw = binascii.unhexlify(ciphertext)
    if len(raw) < len(_SEAL):
        raise ValueError("Invalid or malformed ciphertext (too short)")
    if not raw.startswith(_SEAL):
        raise ValueError("Signature did not match digest.")
    return raw[len(_SEAL):][::-1].decode("utf-8")


class Datastore:
    """The server side: every key of every pack, with call counts for tests and benchmarks."""

    def __init__(self, clock: Callable[[], float] = time.time, max_page_size: int = 100,
                 requester_is_admin: bool = True):
        self.clock = clock
        self.max_page_size = max_page_size
        # With RBAC off (st2's default) every user counts as admin.
        self.requester_is_admin = requester_is_admin
        self.calls: Counter = Counter()
        self._items: Dict[str, tuple] = {}
        self._lock = threading.Lock()

    def _alive(self, name: str) -> Optional[tuple]:
        item = self._items.get(name)
        if item is not None and item[2] is not None and item[2] <= self.clock():
            del self._items[name]
            return None
        return item

    def put(self, name: str, value: str, ttl: Optional[int], secret: bool) -> None:
        with self._lock:
            expires = self.clock() + ttl if ttl else None
            self._items[name] = (value, secret, expires)

    def get(self, name: str) -> Optional[tuple]:
        with self._lock:
            return self._alive(name)

    def delete(self, name: str) -> None:
        with self._lock:
            if self._alive(name) is None:
                raise DatastoreError('Resource with a reference or id "%s" not found' % name)
            del self._items[name]

    def get_all(self, prefix: Optional[str], limit: Optional[int], offset: int) -> List[tuple]:
        if limit is not None and int(limit) > self.max_page_size and not self.requester_is_admin:
            raise DatastoreError(
                'Limit "%s" specified, maximum value is "%s"' % (limit, self.max_page_size)
            )
        with self._lock:
            names = sorted(name for name in list(self._items)
                           if (not prefix or name.startswith(prefix)) and self._alive(name))
            end = None if limit in (None, -1) else offset + int(limit)
            return [(name,) + self._items[name] for name in names[offset:end]]

    def keys(self) -> List[str]:
        """Every live key (for tests: what is left behind)."""
        with self._lock:
            return sorted(name for name in list(self._items) if self._alive(name))

    def service(self, pack: str, class_name: str) -> DatastoreService:
        return DatastoreService(self, pack, class_name)


class DatastoreService:
    """st2common.services.datastore.BaseDatastoreService over a ``Datastore``."""

    def __init__(self, datastore: Datastore, pack_name: str, class_name: str):
        self._datastore = datastore
        self._pack_name = pack_name
        self._class_name = class_name

    def _full_name(self, name: str, local: bool) -> str:
        if local:
            return "%s.%s%s%s" % (self._pack_name, self._class_name, SEPARATOR, name)
        return name

    @staticmethod
    def _check_scope(scope: str) -> None:
        if scope != SYSTEM_SCOPE:
            raise ValueError("Scope %s is unsupported." % scope)

    def list_values(self, local=True, prefix=None, limit=None, offset=0):
        self._datastore.calls["list_values"] += 1
        if local:
            key_prefix = "%s.%s%s" % (self._pack_name, self._class_name, SEPARATOR)
            if prefix:
                key_prefix += prefix
        else:
            key_prefix = prefix
        limit = limit or self._datastore.max_page_size
        rows = self._datastore.get_all(key_prefix, limit, offset or 0)
        return [
            KeyValuePair(name, _ciphertext(value) if secret else value, secret, expires)
            for name, value, secret, expires in rows
        ]

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        self._check_scope(scope)
        self._datastore.calls["get_value"] += 1
        item = self._datastore.get(self._full_name(name, local))
        if item is None:
            return None
        value, secret, _ = item
        return _ciphertext(value) if secret and not decrypt else value

    def set_value(self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False):
        self._check_scope(scope)
        self._datastore.calls["set_value"] += 1
        self._datastore.put(self._full_name(name, local), str(value), ttl, bool(encrypt))
        return True

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        self._check_scope(scope)
        self._datastore.calls["delete_value"] += 1
        try:
            self._datastore.delete(self._full_name(name, local))
        except DatastoreError:
            return False
        return True
