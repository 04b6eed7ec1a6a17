"""A campaign scheduler's round trip through Mailroom, with the Python client generated from
Mailroom's OpenAPI document and no hand edits:

    pip install openapi-python-client standardwebhooks
    openapi-python-client generate --path docs/openapi.json --output-path mailroom_client --meta none
    MAILROOM_URL=http://127.0.0.1:8080 MAILROOM_KEY=mr_... MAILROOM_MAILBOX='{"from_address": ...}' \
        python3 examples/scheduler.py

It registers a webhook (a receiver on loopback, in this process), connects a mailbox (the JSON
in MAILROOM_MAILBOX, as `POST /v1/mailboxes` takes it), enqueues a batch of sends, pages through
the sends and the event feed, and verifies every webhook delivery with the Standard Webhooks
library. It prints one line per step and exits non-zero if anything is off.
"""

import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

from mailroom_client import AuthenticatedClient
from mailroom_client.api.events import get_events
from mailroom_client.api.mailboxes import post_mailboxes
from mailroom_client.api.sends import get_sends, post_sends_batch
from mailroom_client.api.webhooks import post_webhooks
from mailroom_client.models import BatchRequest, ConnectRequest, NewWebhook
from mailroom_client.types import UNSET
from standardwebhooks import Webhook

SENDS = 7
PAGE = 3


def receiver():
    """An HTTP receiver on loopback that keeps every delivery's body and headers."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/hook", got


def until(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.2)


def main():
    client = AuthenticatedClient(
        base_url=os.environ["MAILROOM_URL"], token=os.environ["MAILROOM_KEY"], raise_on_unexpected_status=True
    )
    url, deliveries = receiver()
    hook = post_webhooks.sync(client=client, body=NewWebhook(url=url, event_types=["send.sent"]))
    print(f"webhook {hook.id} registered")

    mailbox = post_mailboxes.sync(client=client, body=ConnectRequest.from_dict(json.loads(os.environ["MAILROOM_MAILBOX"])))
    mailbox_id = mailbox.id
    print(f"mailbox {mailbox_id} connected")

    run = uuid.uuid4().hex[:8]
    items = [
        {
            "idempotency_key": f"{run}-{i}",
            "mailbox_id": mailbox_id,
            "to": [f"lead-{run}-{i}@example.test"],
            "subject": f"Hello {i}",
            "text": "From the generated client.",
            "metadata": {"campaign": run, "lead": i},
        }
        for i in range(SENDS)
    ]
    results = post_sends_batch.sync(client=client, body=BatchRequest(items=items))["results"]
    created = [r for r in results if r["status"] == "created"]
    print(f"batch: {len(created)} of {SENDS} created")
    if len(created) != SENDS:
        sys.exit(f"batch results: {results}")

    def all_sends():
        sends, pages, after = [], 0, UNSET
        while True:
            page = get_sends.sync(client=client, mailbox_id=mailbox_id, limit=PAGE, after=after)
            pages += 1
            sends += page.sends
            if not page.next_:
                return sends, pages
            after = page.next_

    until("every send to be sent", lambda: all(s.state == "sent" for s in all_sends()[0]))
    sends, pages = all_sends()
    print(f"sends: {len(sends)} sent, read in {pages} pages of {PAGE}")

    events, after = [], UNSET
    while True:
        page = get_events.sync(client=client, after=after, limit=PAGE, type_="send.sent")
        if not page.events:
            break
        events += page.events
        after = page.next_
    print(f"events: {len(events)} send.sent read from the feed")
    if len(events) != SENDS:
        sys.exit("the feed lacks events")

    until("every webhook delivery", lambda: len(deliveries) >= SENDS)
    verifier = Webhook(hook.secret)
    for body, headers in deliveries:
        verifier.verify(body, headers)
    print(f"webhooks: {len(deliveries)} deliveries verified with the Standard Webhooks library")


if __name__ == "__main__":
    main()
