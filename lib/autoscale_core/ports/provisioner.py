"""The provisioner port: what configures a new VM once it runs.

A new VM bootstraps itself from its cloud-config (``bootstrap``); the pack then waits for the
node's first finished configuration run (``wait_converged``) and, when the node leaves,
deletes what the provisioner keeps of it (``delete_node``). Errors are BackendError (remote)
or ValidationError (bad input, raised before any I/O).
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional


class Provisioner(abc.ABC):
    """The configuration management system that sets up new nodes."""

    @abc.abstractmethod
    def bootstrap(self, node: str, run_list: List[str], environment: str) -> Dict[str, Any]:
        """The cloud-config sections (cloud-init module name -> its settings) that make a new
        VM configure itself as ``node`` with ``run_list`` in ``environment``."""

    @abc.abstractmethod
    def wait_converged(self, node: str, since: Any, timeout: Optional[float] = None) -> Any:
        """Wait until ``node`` has finished a run that began at or after ``since`` (the VM's
        creation time); a BackendError after ``timeout`` seconds. The result has
        ``as_dict()``."""

    @abc.abstractmethod
    def delete_node(self, node: str) -> Any:
        """Delete what the provisioner keeps of ``node``; already gone is a success. The
        result has ``as_dict()``."""

    def close(self) -> None:  # noqa: B027 - nothing to release unless overridden
        """Release connections; the object is not used afterwards."""

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
