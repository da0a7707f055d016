"""The client of a report kernel: ready as soon as the kernel says so, not 0.2 s later.

jupyter_client's ``wait_for_ready`` asks for the kernel's info, then reads the IOPub channel
until it has been silent for 0.2 s (its way of knowing that every message published before
was received). A report pays that wait for every client: papermill's, and the two silent
calls a kept kernel gets around each report (:mod:`rehabstats.report.kernel_state`) -- about
0.6 s of a report that takes a few seconds in a kept kernel.

:class:`ReadyClient` knows instead: the kernel publishes the ``idle`` status of a request on
IOPub after everything the request caused, and IOPub delivers in order, so once the ``idle``
of its own ``kernel_info`` request has arrived, the channel is connected and nothing published
before it is still on the way. Until then it asks again (a new connection may miss the first
messages while it subscribes), as jupyter_client does. What a notebook receives is unchanged:
every message before the ``idle`` is read and dropped, as the upstream flush drops them.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient

__all__ = ["ReadyClient"]

_SHELL_WAIT = 1.0
"""Longest wait for one ``kernel_info`` reply before asking again, in seconds."""
_IOPUB_WAIT = 0.2
"""Longest wait for the next IOPub message before asking again, in seconds (the IOPub
connection may not have been subscribed when the kernel published)."""


class ReadyClient(AsyncKernelClient):
    """An :class:`~jupyter_client.asynchronous.AsyncKernelClient` whose
    :meth:`wait_for_ready` returns when the ``idle`` status of its ``kernel_info`` request
    arrives on IOPub (instead of after 0.2 s of IOPub silence)."""

    async def _ready_reply(self, deadline: float) -> dict[str, Any]:
        while True:
            msg_id = self.kernel_info()
            reply = await self._reply_to(msg_id, deadline)
            if reply is not None and await self._idle_after(msg_id):
                return reply
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError("Kernel didn't respond in time")

    async def _reply_to(self, msg_id: str, deadline: float) -> dict[str, Any] | None:
        """The shell reply to ``msg_id`` (None after a silent second: ask again)."""
        while True:
            try:
                msg = await self.shell_channel.get_msg(timeout=_SHELL_WAIT)
            except Empty:
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg
            if time.monotonic() > deadline:
                return None

    async def _idle_after(self, msg_id: str) -> bool:
        """Read IOPub up to the ``idle`` status of ``msg_id`` (False if it does not come)."""
        while True:
            try:
                msg = await self.iopub_channel.get_msg(timeout=_IOPUB_WAIT)
            except Empty:
                return False
            if (
                msg.get("msg_type") == "status"
                and msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg.get("content", {}).get("execution_state") == "idle"
            ):
                return True

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # type: ignore[override]
        """Return once the kernel answers on the shell channel and IOPub is caught up.

        Parameters
        ----------
        timeout : float, optional
            Longest wait in seconds (none by default); ``RuntimeError`` after it, or as soon
            as the kernel process has died.
        """
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        reply = await self._ready_reply(deadline)
        self._handle_kernel_info_reply(reply)

    _async_wait_for_ready = wait_for_ready
