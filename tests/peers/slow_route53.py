"""A slow Route 53 for tests/tests/dns_sidecar.rs: an HTTP proxy in front of moto that forwards
every request unchanged, except Route 53 GetChange (GET /2013-04-01/change/ID), which it
answers itself with PENDING for the first PENDING_SECONDS seconds after it starts (moto answers
INSYNC at once; a Route 53 control-plane slowdown does not). After that, GetChange goes to moto
too (INSYNC).

  slow_route53.py UPSTREAM PENDING_SECONDS

Prints one JSON line on stdout, {"endpoint": "http://127.0.0.1:PORT"}, then serves until
killed. GET /_test/hits answers {"get_change": n, "pending": n}.
"""

import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GET_CHANGE = re.compile(r"^/2013-04-01/change/([^/?]+)")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}

PENDING_XML = """<?xml version="1.0" encoding="UTF-8"?>
<GetChangeResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/{id}</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo></GetChangeResponse>"""


def main():
    upstream = urllib.parse.urlsplit(sys.argv[1])
    pending_until = time.monotonic() + float(sys.argv[2])
    hits = {"get_change": 0, "pending": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            print(fmt % args, file=sys.stderr, flush=True)

        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                conn.close()

        def handle_one(self):
            if self.path == "/_test/hits":
                with lock:
                    body = json.dumps(hits).encode()
                return self.answer(200, body, "application/json")
            m = GET_CHANGE.match(self.path)
            if self.command == "GET" and m:
                with lock:
                    hits["get_change"] += 1
                    pending = time.monotonic() < pending_until
                    hits["pending"] += int(pending)
                if pending:
                    xml = PENDING_XML.format(id=m.group(1)).encode()
                    return self.answer(200, xml, "text/xml")
            self.forward()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(json.dumps({"endpoint": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
