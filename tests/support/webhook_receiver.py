#!/usr/bin/env python3
"""A webhook receiver for cutover's end-to-end tests: verifies every delivery
with `standardwebhooks`, the Standard Webhooks reference library (PyPI), and
records each request as one JSON line.

    WEBHOOK_SECRET=whsec_... webhook_receiver.py --port PORT --out FILE
        [--fail-first N] [--fail-while PATH]

Answers 204 to a delivery that verifies, 401 to one that does not (and
records why), 500 to the first N requests (`--fail-first`) and to every
request while PATH exists (`--fail-while`), whatever their signature.
Each line: {"id", "timestamp", "signature", "verified", "error", "status",
"type", "body"}.
"""

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-while", default=None)
    args = parser.parse_args()
    secret = os.environ["WEBHOOK_SECRET"]
    webhook = Webhook(secret)
    lock = threading.Lock()
    state = {"fail_first": args.fail_first}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k: v for k, v in self.headers.items()}
            record = {
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
            }
            try:
                payload = webhook.verify(body, headers)
                record.update(verified=True, error=None, type=payload.get("type"), body=payload)
            except WebhookVerificationError as e:
                record.update(verified=False, error=str(e), type=None, body=body.decode("utf-8", "replace"))
            with lock:
                if state["fail_first"] > 0:
                    state["fail_first"] -= 1
                    status = 500
                elif args.fail_while and os.path.exists(args.fail_while):
                    status = 500
                elif record["verified"]:
                    status = 204
                else:
                    status = 401
                record["status"] = status
                with open(args.out, "a", encoding="utf-8") as out:
                    out.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
