"""What the kubelet's probes ask a process, over plain HTTP on its metrics port: is it alive
(its event loop still turns) and ready (it serves, and is alive).

An exec probe of `tawasul-health` costs a Python process, grpc's import and a TLS handshake:
about 0.3 s of CPU, inside the pod's cgroup, every 10 s for readiness and 20 s for liveness,
which the HorizontalPodAutoscaler counted as load (an idle pod near half its CPU request).
These answers cost the pod a thread's read of two values.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# A loop that has not turned for this long is stuck (a blocking call, a deadlock in a thread
# it waits on); the liveness probe restarts it after its failureThreshold of these.
STALL_SECONDS = 10.0
BEAT_SECONDS = 1.0
# Where the metrics server answers them (deploy/k8s's probes ask there).
LIVEZ = "/livez"
READYZ = "/readyz"


class Vitals:
    """Set by the event loop, read by the metrics server's threads."""

    def __init__(
        self, *, stall: float = STALL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stall = stall
        self._clock = clock
        self._beat = clock()
        # Whether the process takes calls: its gRPC health SERVING (service.serve sets it).
        self.serving = False

    def beat(self) -> None:
        self._beat = self._clock()

    async def keep_beating(self, every: float = BEAT_SECONDS) -> None:
        """Beats every `every` seconds until cancelled: only a loop that turns does."""
        while True:
            self.beat()
            await asyncio.sleep(every)

    def alive(self) -> tuple[bool, str]:
        """Whether the loop turned within the stall limit, and what to tell the prober."""
        since = self._clock() - self._beat
        if since >= self._stall:
            return False, f"event loop stalled for {since:.0f} s"
        return True, "alive"

    def ready(self) -> tuple[bool, str]:
        """Whether the process serves and is alive, and what to tell the prober."""
        alive, why = self.alive()
        if not alive:
            return False, why
        return (True, "serving") if self.serving else (False, "not serving")


# The process's own: one event loop, one metrics server.
VITALS = Vitals()
