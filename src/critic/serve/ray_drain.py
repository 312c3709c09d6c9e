"""The Ray engine's drain: on SIGTERM or Ctrl-C, every Ray Serve HTTP proxy stops accepting
connections and answers every request already sent before Serve is stopped.

Ray Serve stops a proxy by killing its actor, and a request in flight is then lost (its
client sees the connection close with no answer). critic's proxies run uvicorn with the
local engine's protocol (:class:`critic.serve.proxy_protocol.Drain`); what they lack is
being told to shut their uvicorn server down gracefully, and a way to say when they are
done. A small named actor (:class:`DrainSignal`, no CPU) carries both:

- the command creates it before Serve starts (:func:`create_signal`);
- each proxy, when its uvicorn server starts (:func:`hook_uvicorn`, called in the proxy
  process), waits on it; when told, it sets the server's ``should_exit``: uvicorn closes the
  listener, the protocol answers what each connection sent (``Connection: close``) and closes
  it, and the proxy reports to the actor once its server is down;
- the command (:func:`drain`) tells the proxies and waits until all of them are done, at most
  ``--drain-timeout``; only then does it stop Serve, with the replicas still there to answer.
"""

from __future__ import annotations

import asyncio
import os
import time

ACTOR = "critic-serve-drain"
NAMESPACE = "critic"


def _signal_class():
    import ray

    @ray.remote(num_cpus=0)
    class DrainSignal:
        """Told once to drain; counts the proxies that have drained."""

        def __init__(self) -> None:
            self._go = asyncio.Event()
            self._drained: set[str] = set()

        async def wait(self) -> None:
            await self._go.wait()

        async def start(self) -> None:
            self._go.set()

        async def drained(self, proxy: str) -> None:
            self._drained.add(proxy)

        async def count(self) -> int:
            return len(self._drained)

    return DrainSignal


def create_signal():
    """The drain signal for this command's proxies (an actor named :data:`ACTOR`)."""
    return _signal_class().options(name=ACTOR, namespace=NAMESPACE, get_if_exists=True).remote()


def drain(signal, proxies: int, timeout_s: float) -> int:
    """Tell the proxies to drain; wait until ``proxies`` of them are done (at most
    ``timeout_s``). The number that finished."""
    import ray

    ray.get(signal.start.remote())
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = ray.get(signal.count.remote())
        if done >= proxies:
            break
        time.sleep(0.05)
    return done


def hook_uvicorn() -> None:
    """In a proxy process: every uvicorn server started here drains when the signal says so
    (no signal actor: nothing changes)."""
    import uvicorn

    if getattr(uvicorn.Server.startup, "critic_drain", False):
        return
    original = uvicorn.Server.startup

    async def startup(self, sockets=None) -> None:
        await original(self, sockets)
        if self.started:
            asyncio.get_running_loop().create_task(_watch(self))

    startup.critic_drain = True
    uvicorn.Server.startup = startup


async def _watch(server) -> None:
    import ray

    try:
        signal = ray.get_actor(ACTOR, namespace=NAMESPACE)
    except ValueError:  # not started by critic serve: no drain
        return
    original_shutdown = server.shutdown

    async def shutdown(sockets=None) -> None:
        await original_shutdown(sockets=sockets)
        await signal.drained.remote(f"{os.uname().nodename}:{os.getpid()}")

    server.shutdown = shutdown  # uvicorn calls it once should_exit is seen
    await signal.wait.remote()
    server.should_exit = True
