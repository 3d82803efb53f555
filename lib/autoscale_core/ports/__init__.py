"""Ports: what the services ask of the world outside the pack, one contract per role, and
nothing of how.

    Datastore, Dispatch   StackStorm's own services (an action's ``action_service``, a
                          sensor's ``sensor_service``): the datastore methods ``store.py``
                          calls and the sensor's ``dispatch``
    compute               VMs: boot, destroy, list (``Compute``)
    provisioner           what configures a new VM: its bootstrap, its first converge, its
                          removal (``Provisioner``)
    dns                   the names of nodes and groups (``Dns``)
    load_balancer         a group's pool of servers: add, drain, remove (``LoadBalancer``)
    chat                  where people are told what the pack does (``Chat``)

Each role module holds its contract (an abstract class; what every implementation shares is
built on its primitives there) and the values it speaks in. A backend (``backends/``)
implements one or more roles; the pack config's ``type`` key of the role's section chooses
which (``backends/__init__.py``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol


class Datastore(Protocol):
    """The subset of st2's datastore service the pack uses (every key global: local=False)."""

    def get_value(self, name: str, local: bool = True, scope: str = "system",
                  decrypt: bool = False) -> Optional[str]:
        ...

    def set_value(self, name: str, value: str, ttl: Optional[int] = None, local: bool = True,
                  scope: str = "system", encrypt: bool = False) -> bool:
        ...

    def delete_value(self, name: str, local: bool = True, scope: str = "system") -> bool:
        ...

    def list_values(self, local: bool = True, prefix: Optional[str] = None,
                    limit: Optional[int] = None, offset: Optional[int] = None) -> List[Any]:
        ...


class Dispatch(Protocol):
    """A sensor service's ``dispatch``: a trigger instance, dropped by st2 (silently) when the
    payload fails the trigger type's schema."""

    def dispatch(self, trigger: str, payload: Optional[Dict[str, Any]] = None,
                 trace_tag: Optional[str] = None) -> None:
        ...
