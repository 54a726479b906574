"""Stand-ins for what crosses the network to the outside world, on real local sockets, each
with a mode the soak switches at run time:
  ok      answers (WeChat: code `c-X` logs in as openid `o-X`; SMTP: accepts every message)
  silent  accepts the connection and never says a word
  refuse  WeChat answers an errcode, SMTP a 421 greeting
The SMTP fake counts every accepted message by its Message-ID.

As a script (for scripts/restore-drill): python3 fakes.py WECHAT_PORT SMTP_PORT MESSAGE_IDS_FILE
"""
import json
import socket
import time
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Fake:
    def __init__(self):
        self.mode = "ok"

    def set(self, mode):
        self.mode = mode


class Wechat(Fake):
    def start(self, port):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if fake.mode == "silent":
                    threading.Event().wait(120)
                    return
                code = parse_qs(urlparse(self.path).query).get("js_code", [""])[0]
                if fake.mode == "refuse":
                    answer = {"errcode": -1, "errmsg": "system busy"}
                else:
                    answer = {"openid": "o-" + code[2:], "session_key": "x"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a server killed mid-request resets its connection: expected here

        server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self


class Smtp(Fake):
    def __init__(self, record=None):
        super().__init__()
        self.lock = threading.Lock()
        self.message_ids = {}  # Message-ID -> times accepted
        self.twice = []        # (time, Message-ID) of each acceptance after the first
        self.record = record

    def accepted(self, message_id):
        with self.lock:
            self.message_ids[message_id] = self.message_ids.get(message_id, 0) + 1
            if self.message_ids[message_id] > 1:
                self.twice.append((time.time(), message_id))
            if self.record:
                with open(self.record, "a") as f:
                    f.write(message_id + "\n")

    def start(self, port):
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                if fake.mode == "silent":
                    threading.Event().wait(120)
                    return
                if fake.mode == "refuse":
                    self.wfile.write(b"421 soak: service not available\r\n")
                    return
                out = self.wfile
                out.write(b"220 fake ESMTP\r\n")
                message_id = None
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        out.write(b"250 fake\r\n")
                    elif verb == b"DATA":
                        out.write(b"354 go ahead\r\n")
                        message_id = None
                        while True:
                            data = self.rfile.readline()
                            if not data or data in (b".\r\n", b".\n"):
                                break
                            if data.lower().startswith(b"message-id:"):
                                message_id = data.split(b":", 1)[1].strip().decode()
                        if fake.mode != "ok":
                            out.write(b"451 soak: try again later\r\n")
                            continue
                        fake.accepted(message_id or "(none)")
                        out.write(b"250 accepted\r\n")
                    elif verb == b"QUIT":
                        out.write(b"221 bye\r\n")
                        return
                    else:
                        out.write(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass

        server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self


if __name__ == "__main__":
    Wechat().start(int(sys.argv[1]))
    Smtp(record=sys.argv[3]).start(int(sys.argv[2]))
    threading.Event().wait()
