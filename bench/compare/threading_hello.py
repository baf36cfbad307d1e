"""threading_hello.py: Python's http.server.ThreadingHTTPServer answering GET /hello with
`concur serve`'s body ({"hello": "world"}, application/json): the standard library's peer in
issue 15's hello benchmark (bench/compare/run_serve_bench.sh). HTTP/1.1 keep-alive (a thread per
connection), TCP_NODELAY, no access log. Binds 127.0.0.1; prints "ready PORT" once listening
(--port 0: a free one); SIGTERM or Ctrl-C stops it.

    python3 bench/compare/threading_hello.py --port 0
"""
import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"hello": "world"}'


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # StreamRequestHandler's own knob (TCP_NODELAY): the handler writes the headers and the body
    # in two send()s, and with Nagle on the body waits for the client's delayed ACK (~40 ms a
    # request: 170 req/s at 10 connections here), which measures the kernel, not the server.
    disable_nagle_algorithm = True

    def do_GET(self):
        ok = self.path == "/hello"
        body = BODY if ok else b"{}"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Hello)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"ready {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
