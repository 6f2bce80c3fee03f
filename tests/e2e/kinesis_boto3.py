#!/usr/bin/env python3
"""Produces to Tributary's Kinesis-compatible API with an unmodified boto3 client.

Usage:
    kinesis_boto3.py --endpoint http://127.0.0.1:8080 --access-key AKIA... --secret ...

Puts one record with put_record and three with put_records (two sharing a partition key, so
their order can be checked), prints what it sent and the answers as one JSON object on stdout
({"sent": [{"call", "partition_key", "data"}, …], "put_record": …, "put_records": …,
"failures": […]}; `sent` is in call order, so its n-th put_records entry is the n-th record
of the answer), and exits non-zero when a call fails, a record is not accepted, or an answer
lacks what Kinesis promises.
The access key pair comes from `tributary keys create --aws`.

Exit codes: 0 success, 1 a call or check failed, 2 boto3 is not installed.
"""

import argparse
import json
import sys
import uuid


def event(anonymous_id, session_id, name):
    """One event in Tributary's native envelope, as Kinesis Data."""
    return json.dumps(
        {
            "event_type": f"track:{name}",
            "anonymous_id": anonymous_id,
            "session_id": session_id,
            "properties": {"source": "kinesis_boto3.py"},
        }
    ).encode()


def check(condition, message, failures):
    if not condition:
        failures.append(message)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--access-key", required=True, help="AWS access key id of the key")
    parser.add_argument("--secret", required=True, help="AWS secret access key of the key")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stream", default="events")
    args = parser.parse_args()

    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as e:
        print(f"boto3 is required: {e}", file=sys.stderr)
        return 2

    client = boto3.client(
        "kinesis",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret,
        # A failure should show at once, not after the SDK's default backoff.
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )
    run = uuid.uuid4().hex[:8]
    failures = []
    sent = []
    output = {"run": run, "sent": sent}

    def record(call, anonymous_id, session_id, name):
        """One Kinesis record, noted in `sent` (with its Data decoded) for the caller."""
        data = event(anonymous_id, session_id, name)
        sent.append({"call": call, "partition_key": session_id, "data": json.loads(data)})
        return {"Data": data, "PartitionKey": session_id}

    try:
        single = client.put_record(
            StreamName=args.stream,
            **record("put_record", f"anon-{run}", f"s-{run}-1", "Single Put"),
        )
        single.pop("ResponseMetadata", None)
        output["put_record"] = single
        check(
            str(single.get("ShardId", "")).startswith("shardId-"),
            "put_record: no ShardId",
            failures,
        )
        check(
            str(single.get("SequenceNumber", "")).isdigit(),
            "put_record: SequenceNumber is not decimal",
            failures,
        )

        batch = client.put_records(
            StreamName=args.stream,
            Records=[
                record("put_records", f"anon-{run}", f"s-{run}-2", "First"),
                record("put_records", f"anon-{run}", f"s-{run}-2", "Second"),
                record("put_records", f"anon-{run}", f"s-{run}-3", "Other"),
            ],
        )
        batch.pop("ResponseMetadata", None)
        output["put_records"] = batch
        records = batch.get("Records", [])
        check(batch.get("FailedRecordCount") == 0, "put_records: some records failed", failures)
        check(len(records) == 3, "put_records: not 3 results", failures)
        for index, record in enumerate(records):
            check(
                "ShardId" in record and "SequenceNumber" in record,
                f"put_records: record {index} has no position: {record}",
                failures,
            )
        if len(records) == 3 and not failures:
            first, second = records[0], records[1]
            check(
                first["ShardId"] == second["ShardId"]
                and int(second["SequenceNumber"]) > int(first["SequenceNumber"]),
                "put_records: one partition key did not keep its shard and order",
                failures,
            )
    except (BotoCoreError, ClientError) as e:
        failures.append(f"{type(e).__name__}: {e}")

    output["failures"] = failures
    print(json.dumps(output, indent=2, sort_keys=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
