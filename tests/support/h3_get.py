#!/usr/bin/env python3
"""GET URLs over HTTP/3 with aioquic (PyPI), all at once on one QUIC connection.

Prints one JSON line per URL, in order: status, response headers, body length and SHA-256,
or the error (a reset stream, a timeout). The certificate is not verified (loopback test
certificates). Exits 0 when every request got a response, 1 otherwise.

Usage: h3_get.py [--freeze-after BYTES] URL [URL ...]; `URL|RANGE` sends `range: RANGE` with
that request. `--freeze-after BYTES` plays a client whose device froze: once BYTES of body have
arrived it prints `frozen` and stops all work (no reads, no acknowledgements, no flow-control
credit) until killed.
"""
import asyncio
import hashlib
import json
import sys
import time
from urllib.parse import urlparse

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamReset

import ssl


FREEZE_AFTER = None


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending = {}
        self.received = 0

    def quic_event_received(self, event):
        if isinstance(event, StreamReset):
            state = self.pending.pop(event.stream_id, None)
            if state and not state["done"].done():
                state["done"].set_exception(RuntimeError(f"stream reset (code {event.error_code})"))
            return
        for ev in self.h3.handle_event(event):
            state = self.pending.get(ev.stream_id)
            if state is None:
                continue
            if isinstance(ev, HeadersReceived):
                state["headers"].extend(ev.headers)
            elif isinstance(ev, DataReceived):
                state["sha"].update(ev.data)
                state["len"] += len(ev.data)
                self.received += len(ev.data)
                if FREEZE_AFTER is not None and self.received >= FREEZE_AFTER:
                    print("frozen", flush=True)
                    time.sleep(3600)  # blocks the event loop: nothing is read or acknowledged
            if getattr(ev, "stream_ended", False) and not state["done"].done():
                state["done"].set_result(state)

    async def get(self, url):
        url, _, byte_range = url.partition("|")
        u = urlparse(url)
        path = u.path + ("?" + u.query if u.query else "")
        stream_id = self._quic.get_next_available_stream_id()
        state = {"headers": [], "sha": hashlib.sha256(), "len": 0, "done": self._loop.create_future()}
        self.pending[stream_id] = state
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", u.netloc.encode()),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic"),
        ]
        if byte_range:
            headers.append((b"range", byte_range.encode()))
        self.h3.send_headers(stream_id=stream_id, headers=headers, end_stream=True)
        self.transmit()
        try:
            await asyncio.wait_for(state["done"], 60)
        except Exception as e:  # reset, timeout
            return {"url": url, "error": str(e) or type(e).__name__}
        headers = {}
        status = None
        for k, v in state["headers"]:
            k, v = k.decode(), v.decode()
            if k == ":status":
                status = int(v)
            else:
                headers[k] = v if k not in headers else headers[k] + ", " + v
        return {"url": url, "status": status, "headers": headers, "len": state["len"], "sha256": state["sha"].hexdigest()}


async def main(urls):
    first = urlparse(urls[0].partition("|")[0])
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE)
    config.server_name = first.hostname
    async with connect(first.hostname, first.port, configuration=config, create_protocol=Client) as client:
        results = await asyncio.gather(*(client.get(u) for u in urls))
    for r in results:
        print(json.dumps(r), flush=True)
    return all("error" not in r for r in results)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--freeze-after"]:
        FREEZE_AFTER = int(args[1])
        args = args[2:]
    sys.exit(0 if asyncio.run(main(args)) else 1)
