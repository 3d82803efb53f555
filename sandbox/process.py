"""Child processes of the sandbox (named, haproxy, web nodes): started so that they die with
the process that started them, and stopped politely, then firmly."""

from __future__ import annotations

import signal
import subprocess
from typing import Any, List, Optional


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie is dead, just not reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
            return handle.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def kill_leftovers(pids: List[int]) -> List[int]:
    """Kill (SIGKILL) those of ``pids`` still running; the ones that were."""
    import os

    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when its parent dies, so a killed test run or demo
    leaves nothing behind. Linux only; a no-op elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - not Linux
        pass


def spawn(args: List[str], **kwargs: Any) -> subprocess.Popen:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(args, preexec_fn=_die_with_parent, **kwargs)


def stop(process: Optional[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; waits for the process to be gone."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def kill(process: Optional[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGKILL at once: the process dies without a goodbye."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(timeout)
