#!/usr/bin/env python3
"""Checks that what real clients sent arrived intact in Tributary's stream.

Usage:
    check_stream.py --tributary BIN --data DIR --tenant T [--segment FILE]… [--kinesis FILE]…

Reads every record of every shard with `tributary stream read --json` (read-only, beside the
running server), then checks:

* for each message of a `segment_python.py` output (--segment): exactly one event has
  event_id == messageId, with the tenant of the key, the event_type of the message type, the
  ids, the properties (track, page, screen; plus name/category), traits (identify, group; plus
  group_id), previous_id (alias), the typed context (page, user agent, ip, locale, campaign),
  every other context field kept, the library, the event time, and the stream key;
* for each record of a `kinesis_boto3.py` output (--kinesis): the record at the ShardId and
  SequenceNumber the server answered holds the event that was sent, with the tenant of the key
  and the stream key `<tenant>:<PartitionKey>`.

Prints one line per message (`ok …` or `FAIL …: why`) and ends with the line
`N passed, M failed`; the exit code is 1 when any check failed, 2 when the stream could not be
read.
"""

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime

# How far the event time may be from the client's `timestamp`: the server corrects it for the
# client's clock skew (received_at - sentAt), which on one machine is the upload's latency.
TIME_TOLERANCE_MICROS = 120 * 1_000_000


class StreamError(Exception):
    pass


def tributary(binary, data, *args):
    """Runs `tributary <args> --json --data <data>` and returns its JSON output."""
    command = [binary, *args, "--json", "--data", data]
    # tributary takes every TRIBUTARY_* variable for configuration (and refuses unknown ones).
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        raise StreamError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    try:
        return json.loads(result.stdout)
    except ValueError as e:
        raise StreamError(f"{' '.join(command)} printed no JSON ({e}): {result.stdout[:500]!r}")


def read_stream(binary, data):
    """Every record of every shard: a list of (shard, seq, key, event or None, raw value)."""
    stats = tributary(binary, data, "stream", "stats")
    records = []
    for shard_stats in stats["shards"]:
        shard = shard_stats["shard"]
        count = shard_stats["next_seq"] - shard_stats["first_seq"]
        if count <= 0:
            continue
        # One more than there are, so a short read cannot hide behind the limit.
        read = tributary(
            binary, data, "stream", "read", "--shard", str(shard), "--from", "oldest",
            "--limit", str(count + 1),
        )
        if len(read["records"]) < count:
            raise StreamError(
                f"shard {shard}: stats count {count} records, read returned {len(read['records'])}"
            )
        for record in read["records"]:
            try:
                event = json.loads(record["value"])
            except ValueError:
                event = None
            records.append((shard, record["seq"], record["key"], event, record["value"]))
    return records


def micros(iso):
    """An ISO 8601 time as microseconds since the epoch."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1_000_000)


class Checker:
    """Collects the problems of one message."""

    def __init__(self):
        self.problems = []

    def equal(self, what, actual, expected):
        if actual == expected:
            return
        if isinstance(actual, dict) and isinstance(expected, dict):
            # Name only the fields that differ: events are long.
            for name in sorted(set(actual) | set(expected), key=str):
                if name not in expected:
                    self.problems.append(f"{what}.{name} is {json.dumps(actual[name])}, not sent")
                elif name not in actual:
                    self.problems.append(f"{what}.{name} is missing, sent {json.dumps(expected[name])}")
                else:
                    self.equal(f"{what}.{name}", actual[name], expected[name])
        else:
            self.problems.append(f"{what} is {json.dumps(actual)}, sent {json.dumps(expected)}")

    def true(self, condition, problem):
        if not condition:
            self.problems.append(problem)


def expected_event_type(message):
    kind = message["type"]
    return f"track:{message['event']}" if kind == "track" else kind


def expected_properties(message):
    """The event's properties for a Segment message (see crates/collector/src/segment.rs)."""
    kind = message["type"]
    properties = dict(message.get("properties") or {})
    if kind in ("page", "screen"):
        for field in ("name", "category"):
            if message.get(field) is not None:
                properties[field] = message[field]
    if kind == "group":
        properties["group_id"] = message["groupId"]
    if kind in ("identify", "group"):
        properties.update(message.get("traits") or {})
    if kind == "alias":
        properties["previous_id"] = message["previousId"]
    return properties


def check_context(check, sent_context, context):
    """The typed fields of the event's context and everything else, kept by name."""
    sent = dict(sent_context)
    extra = {k: v for k, v in context.items() if k not in ("page", "user_agent", "ip", "locale", "campaign")}
    page = sent.pop("page", None)
    if page is not None:
        stored = context.get("page") or {}
        for field in ("url", "path", "title", "referrer"):
            check.equal(f"context.page.{field}", stored.get(field), page.get(field))
        for field, value in page.items():
            if field in ("url", "path", "title", "referrer"):
                continue
            # Other page fields stay on the page (or, in older builds, in extra.page_extra).
            kept = stored.get(field, (extra.get("page_extra") or {}).get(field))
            check.equal(f"context.page.{field}", kept, value)
    campaign = sent.pop("campaign", None)
    if campaign is not None:
        stored = context.get("campaign") or {}
        for field, value in campaign.items():
            check.equal(f"context.campaign.{field}", stored.get(field), value)
    for sent_name, name in (("userAgent", "user_agent"), ("ip", "ip"), ("locale", "locale")):
        if sent_name in sent:
            check.equal(f"context.{name}", context.get(name), sent.pop(sent_name))
    for field, value in sent.items():
        check.equal(f"context.{field} (kept in extra)", extra.get(field), value)


def check_segment(path, tenant, by_event_id):
    """One result line per message of one segment_python.py output."""
    with open(path) as f:
        output = json.load(f)
    results = []
    for message in output["sent"]:
        message_id = message["messageId"]
        label = f"segment {output.get('mode', '?')} {message['type']} {message_id}"
        check = Checker()
        found = by_event_id.get(message_id, [])
        if len(found) != 1:
            check.problems.append(f"found {len(found)} events with event_id {message_id}, expected 1")
            results.append((label, check.problems))
            continue
        shard, seq, key, event = found[0]
        check.equal("tenant_id", event.get("tenant_id"), tenant)
        check.equal("event_type", event.get("event_type"), expected_event_type(message))
        if message.get("anonymousId") is not None:
            check.equal("anonymous_id", event.get("anonymous_id"), message["anonymousId"])
        check.equal("user_id", event.get("user_id"), message.get("userId"))
        context = message.get("context") or {}
        if context.get("sessionId") is not None:
            check.equal("session_id", event.get("session_id"), context["sessionId"])
        check.equal("properties", event.get("properties"), expected_properties(message))
        check_context(check, context, event.get("context") or {})
        ts = event.get("ts")
        check.true(
            isinstance(ts, int) and abs(ts - micros(message["timestamp"])) <= TIME_TOLERANCE_MICROS,
            f"ts {ts} is not within {TIME_TOLERANCE_MICROS // 1_000_000} s of timestamp "
            f"{message['timestamp']}",
        )
        within = event.get("session_id") or event.get("anonymous_id") or event.get("user_id") or ""
        check.equal("stream key", key, f"{tenant}:{within}")
        results.append((f"{label} (shard {shard} seq {seq})", check.problems))
    return results


def check_kinesis(path, tenant, by_position):
    """One result line per record of one kinesis_boto3.py output."""
    with open(path) as f:
        output = json.load(f)
    answers = []
    if "put_record" in output:
        answers.append(output["put_record"])
    answers.extend(output.get("put_records", {}).get("Records", []))
    results = []
    sent = output.get("sent", [])
    if len(sent) != len(answers):
        results.append((f"kinesis {path}", [f"{len(sent)} records sent, {len(answers)} answered"]))
    for record, answer in zip(sent, answers):
        label = f"kinesis {record['call']} {record['data'].get('event_type')}"
        check = Checker()
        try:
            position = (int(answer["ShardId"].rsplit("-", 1)[1]), int(answer["SequenceNumber"]))
        except (KeyError, ValueError, IndexError):
            results.append((label, [f"the answer has no position: {answer}"]))
            continue
        label += f" (shard {position[0]} seq {position[1]})"
        if position not in by_position:
            results.append((label, ["no record in the stream at the answered position"]))
            continue
        key, event = by_position[position]
        check.equal("stream key", key, f"{tenant}:{record['partition_key']}")
        if event is None:
            results.append((label, check.problems + ["the record is not JSON"]))
            continue
        check.equal("tenant_id", event.get("tenant_id"), tenant)
        for field, value in record["data"].items():
            check.equal(field, event.get(field), value)
        check.true(bool(event.get("event_id")), "no event_id was assigned")
        results.append((label, check.problems))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tributary", required=True, help="the tributary binary")
    parser.add_argument("--data", required=True, help="the server's data directory")
    parser.add_argument("--tenant", required=True, help="the tenant of the keys used")
    parser.add_argument("--segment", action="append", default=[], help="a segment_python.py output")
    parser.add_argument("--kinesis", action="append", default=[], help="a kinesis_boto3.py output")
    args = parser.parse_args()

    try:
        records = read_stream(args.tributary, args.data)
    except (StreamError, subprocess.TimeoutExpired, KeyError) as e:
        print(f"FAIL reading the stream: {e}")
        print("0 passed, 1 failed")
        return 2

    by_event_id = {}
    by_position = {}
    for shard, seq, key, event, _ in records:
        by_position[(shard, seq)] = (key, event)
        if event is not None and event.get("tenant_id") == args.tenant:
            by_event_id.setdefault(event.get("event_id"), []).append((shard, seq, key, event))

    results = []
    for path in args.segment:
        results.extend(check_segment(path, args.tenant, by_event_id))
    for path in args.kinesis:
        results.extend(check_kinesis(path, args.tenant, by_position))

    failed = 0
    for label, problems in results:
        if problems:
            failed += 1
            print(f"FAIL {label}: " + "; ".join(problems))
        else:
            print(f"ok   {label}")
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
