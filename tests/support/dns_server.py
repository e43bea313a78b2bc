#!/usr/bin/env python3
"""A small DNS server for tests (dnslib, UDP and TCP on 127.0.0.1, a port of its choosing).

Answers A queries from a JSON file mapping names to IPv4 addresses, re-read on every query,
with a TTL of 1 second, so a test re-points a name by rewriting the file. Other known-name
queries get an empty answer; unknown names get NXDOMAIN. Prints "port N" once serving.

Usage: dns_server.py RECORDS.json
"""
import json
import sys
import time

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class FileResolver(BaseResolver):
    def __init__(self, path):
        self.path = path

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        with open(self.path) as f:
            records = json.load(f)
        if name not in records:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(records[name]), ttl=1))
        return reply


def main():
    resolver = FileResolver(sys.argv[1])
    # Errors only, on stderr: stdout carries just the port line and is not read after it.
    logger = DNSLogger(
        log="-request,-reply,-truncated,-recv,-send,-data",
        prefix=False,
        logf=lambda s: print(s, file=sys.stderr, flush=True),
    )
    # The OS picks a free UDP port; the same number may be taken for TCP (by any connection's
    # local port), so try again with another until both are ours.
    for attempt in range(50):
        udp = DNSServer(resolver, port=0, address="127.0.0.1", logger=logger)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=logger)
            break
        except OSError:
            udp.server.server_close()
    else:
        sys.exit("no port free for both UDP and TCP")
    udp.start_thread()
    tcp.start_thread()
    print(f"port {port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
