#!/usr/bin/env python3
"""Sends to Tributary's Segment-compatible API with Segment's official Python client.

Usage:
    segment_python.py --host http://127.0.0.1:8080 --write-key KEY [--sync] [--gzip]

Sends one message of each type Segment has — track (with properties), identify (traits), page,
screen, group and alias — through an unmodified `segment-analytics-python`, flushes, prints what
was sent as one JSON object on stdout ({"sent": [message, …], "errors": […], …}; each message
as the client put it on the wire, with its `messageId`), and exits non-zero when the client
reported an error. Whether the messages arrived intact is for the caller to check in the stream
(tests/e2e/check_stream.py).

By default the client queues the messages and its consumer thread uploads them together to
/v1/batch, as in a real application; --sync posts each message as it is made (the client's
`sync_mode`), --gzip compresses the bodies (`Content-Encoding: gzip`).

Exit codes: 0 success, 1 the client reported an error, 2 the client is not installed.
"""

import argparse
import json
import logging
import sys
import uuid


def messages(run):
    """The calls to make: (method name, keyword arguments) for each Segment message type."""
    anonymous_id = f"anon-{run}"
    user_id = f"user-{run}"
    context = {
        "page": {
            "url": f"https://shop.example/products/42?utm_source=e2e&run={run}",
            "path": "/products/42",
            "title": "Café ☕ — product 42",
            "referrer": "https://news.example/",
            "search": f"?utm_source=e2e&run={run}",
        },
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) tributary-e2e",
        "ip": "203.0.113.7",
        "locale": "en-US",
        "campaign": {"source": "e2e", "medium": "email", "name": "launch"},
        "sessionId": f"s-{run}",
        "timezone": "Europe/Paris",
    }
    return [
        (
            "track",
            dict(
                user_id=user_id,
                anonymous_id=anonymous_id,
                event="Order Completed",
                properties={
                    "order_id": f"o-{run}",
                    "revenue": 42.5,
                    "quantity": 3,
                    "currency": "EUR",
                    "gift": False,
                    "note": "naïve ✓ “quoted” \u00e9t\u00e9",
                    "products": [{"sku": "sku-1", "price": 10.0}, {"sku": "sku-2", "price": 32.5}],
                    "coupon": None,
                },
                context=context,
                # One producer-chosen id; the client makes a UUID for the others.
                message_id=f"e2e-track-{run}",
            ),
        ),
        (
            "identify",
            dict(
                user_id=user_id,
                anonymous_id=anonymous_id,
                traits={
                    "email": f"{run}@example.com",
                    "plan": "pro",
                    "logins": 7,
                    "verified": True,
                    "address": {"city": "Lyon", "country": "FR"},
                },
                context=context,
            ),
        ),
        (
            "page",
            dict(
                user_id=user_id,
                anonymous_id=anonymous_id,
                category="Shop",
                name="Product",
                properties={"url": context["page"]["url"], "product_id": "42"},
                context=context,
            ),
        ),
        (
            "screen",
            dict(
                user_id=user_id,
                anonymous_id=anonymous_id,
                category="App",
                name="Home",
                properties={"tab": "feed", "scroll_depth": 0.75},
            ),
        ),
        (
            "group",
            dict(
                user_id=user_id,
                anonymous_id=anonymous_id,
                group_id=f"org-{run}",
                traits={"name": "Acme Inc", "employees": 42, "industry": "retail"},
            ),
        ),
        (
            "alias",
            dict(previous_id=anonymous_id, user_id=user_id),
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="the server's URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--write-key", required=True, help="a write key from `tributary keys create`")
    parser.add_argument("--sync", action="store_true", help="post each message at once (sync_mode)")
    parser.add_argument("--gzip", action="store_true", help="gzip the request bodies")
    args = parser.parse_args()

    try:
        import segment.analytics as analytics
        from segment.analytics.version import VERSION
    except ImportError as e:
        print(f"segment-analytics-python is required: {e}", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    errors = []

    def on_error(error, batch):
        ids = [m.get("messageId") for m in batch] if isinstance(batch, list) else batch
        errors.append(f"{type(error).__name__}: {error} (messages {ids})")

    analytics.write_key = args.write_key
    analytics.host = args.host
    analytics.on_error = on_error
    analytics.sync_mode = args.sync
    analytics.gzip = args.gzip
    # A failure should show at once, not after the client's backoff; 15 s covers a slow CI disk.
    analytics.max_retries = 1
    analytics.timeout = 15

    run = uuid.uuid4().hex[:8]
    sent = []
    for method, kwargs in messages(run):
        try:
            success, message = getattr(analytics, method)(**kwargs)
        except Exception as e:  # sync_mode raises what the upload raised
            errors.append(f"{method}: {type(e).__name__}: {e}")
            continue
        if not success:
            errors.append(f"{method}: the client did not queue the message")
        sent.append(message)
    if not args.sync:
        # Flush the queue, then stop the consumer thread: every upload has ended after this.
        # (In sync_mode there is no queue, and the client's shutdown() fails on the missing
        # consumer threads.)
        try:
            analytics.shutdown()
        except Exception as e:
            errors.append(f"shutdown: {type(e).__name__}: {e}")
        left = analytics.default_client.queue.qsize() if analytics.default_client else 0
        if left:
            # A batch the consumer put back (after a 429) and never sent: not an on_error case.
            errors.append(f"shutdown: {left} messages were still queued, never sent")

    output = {
        "client": f"analytics-python {VERSION}",
        "mode": "sync" if args.sync else "batch",
        "gzip": args.gzip,
        "run": run,
        "sent": sent,
        "errors": errors,
    }
    print(json.dumps(output, indent=2, sort_keys=True, default=str))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
