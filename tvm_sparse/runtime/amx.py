"""Linux's permission to use AMX tiles: asked once per process, before the first tile instruction.

Without it the first ``ldtilecfg``/``tileloadd`` faults (SIGILL): the kernel allocates the 8 KiB of tile
state per thread only for processes that request it (``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``, Linux 5.16+). Needs no compiler: ``load()`` calls it for a library whose target has
AMX.
"""

from __future__ import annotations

import ctypes
import platform

SYS_ARCH_PRCTL = 158  # x86-64
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18

_granted: bool | None = None


class AMXUnavailableError(RuntimeError):
    """This process cannot use AMX tiles (no AMX, not Linux x86-64, or the kernel refused)."""


def request_permission() -> None:
    """Ask Linux for the tile state (idempotent); raises ``AMXUnavailableError`` naming why not."""
    global _granted
    if _granted:
        return
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise AMXUnavailableError(f"AMX needs Linux on x86-64, this is {platform.system()} {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
        err = ctypes.get_errno()
        raise AMXUnavailableError(f"Linux refused the AMX tile state (arch_prctl errno {err}): the CPU lacks "
                                  "AMX, or the kernel is older than 5.16")
    _granted = True
