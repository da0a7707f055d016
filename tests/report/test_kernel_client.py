"""The report kernel's client is ready when the kernel has answered, not after IOPub silence.

jupyter_client's own ``wait_for_ready`` returns only once IOPub has been quiet for 0.2 s: with
a kernel that keeps publishing (here a thread printing every 50 ms for 6 s) it waits until the
printing stops. :class:`rehabstats.report.kernel_client.ReadyClient` is ready once the kernel's
``idle`` status for its own request has arrived -- within a second here -- and what it reads
next belongs to its own requests.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from rehabstats import files
from rehabstats.report.kernel_client import ReadyClient
from rehabstats.report.render import WarmKernel

pytestmark = pytest.mark.slow

CHATTY = """
import threading, time
def chatter():
    for i in range(120):
        print("background", i, flush=True)
        time.sleep(0.05)
threading.Thread(target=chatter, daemon=True).start()
"""


def test_ready_while_the_kernel_keeps_publishing():
    kernel = WarmKernel()
    cwd = files.make_workdir("rehabstats-test-client-")
    try:
        km = kernel.begin(cwd)

        async def scenario() -> tuple[float, dict, list[str]]:
            first = km.client()
            assert isinstance(first, ReadyClient)  # the kernel manager hands out this client
            first.start_channels()
            await first.wait_for_ready(timeout=30)
            reply = await first.execute_interactive(CHATTY, timeout=30)
            assert reply["content"]["status"] == "ok"
            first.stop_channels()
            # a new client while the thread prints: the printing lasts 6 s
            second = km.client()
            second.start_channels()
            start = time.monotonic()
            await second.wait_for_ready(timeout=30)
            waited = time.monotonic() - start
            parents: list[str] = []
            reply = await second.execute_interactive(
                "40 + 2",
                timeout=30,
                output_hook=lambda msg: parents.append(msg["msg_type"]),
            )
            second.stop_channels()
            return waited, reply, parents

        waited, reply, outputs = asyncio.run(scenario())
    finally:
        kernel.close()
        files.remove_workdir(cwd)
    # jupyter_client's client would wait for 0.2 s of silence: until the 6 s of printing end
    assert waited < 2.0, waited
    assert reply["content"]["status"] == "ok"
    # execute_interactive passes only its own request's messages: the result is among them
    assert "execute_result" in outputs
