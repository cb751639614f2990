"""A toy shop for the demo: inventory, payments and shipping as one HTTP participant.

    python examples/shop.py --port 18080

Every endpoint answers JSON and honours ``Idempotency-Key`` (a repeated key gets the first
answer again, as a real participant must). Payments decline amounts over 1000 with HTTP 402,
so ``saga-declined.yaml`` shows a compensation. ``POST /admin/outage {"path": ..., "down":
true}`` makes an endpoint answer 503 until it is posted again with ``"down": false`` (the
demo uses it to show ``kubectl sagaz retry``). Standard library only, on purpose: it is a
stand-in for your services, not part of the operator.
"""

from __future__ import annotations

import argparse
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

answers: dict[str, tuple[int, dict[str, Any]]] = {}
outages: set[str] = set()
lock = threading.Lock()


def handle(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    payload = body if isinstance(body, dict) else {}
    if path == "/admin/outage":
        target = str(payload.get("path"))
        (outages.add if payload.get("down") else outages.discard)(target)
        return 200, {"down": sorted(outages)}
    if path in outages:
        return 503, {"error": f"{path} is down for maintenance"}
    if path == "/inventory/reserve":
        return 200, {"reservationId": f"res-{uuid.uuid4().hex[:8]}", "items": payload.get("items")}
    if path == "/inventory/release":
        return 200, {"released": payload.get("reservationId")}
    if path == "/payments/charge":
        amount = float(payload.get("amount") or 0)
        if amount > 1000:
            return 402, {"error": f"card declined for amount {amount}"}
        return 200, {"paymentId": f"pay-{uuid.uuid4().hex[:8]}", "amount": amount}
    if path == "/payments/refund":
        return 200, {"refunded": payload.get("paymentId")}
    if path == "/shipping/ship":
        return 200, {"trackingNumber": f"TRK{uuid.uuid4().int % 10**8:08d}"}
    return 404, {"error": f"no such endpoint {path}"}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        key = self.headers.get("Idempotency-Key")
        with lock:
            if key is None or key not in answers:
                answers_value = handle(self.path, body)
                if key is not None and answers_value[0] < 500:  # a 5xx is worth retrying
                    answers[key] = answers_value
            else:
                answers_value = answers[key]
        status, answer = answers_value
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"shop: {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
