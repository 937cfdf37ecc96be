"""Query an index by name every few milliseconds, in a process of its own, until told to stop.

argv[1] is a JSON object: url, index, interval (s), stop_file, out (path of the JSON result), and
optionally field + vector (hex) for a KNN query instead of `*`, and retry_vector (hex): the same query vector in
another datatype, sent again when the server refuses the first (a client that follows an index whose datatype
changed: it retries on the blob-size error, and keeps to the vector that was answered); filter (a query for the
KNN's candidates instead of `*`), also (further commands sent after each query, as a client that reads FT.INFO
with each answer does). The result: queries sent, answered
(a reply with at least one document), empty replies, errors (first few listed) and the longest time
between two answered queries - what a client of the index would have seen - and how many gaps between two
answered queries were longer than long_gap_ms (default 50), and when each answer came (answered_at, wall
clock: a migration's phases are recorded in it).
"""

from __future__ import annotations

import json
import os
import sys
import time

import redis


def main() -> int:
    args = json.loads(sys.argv[1])
    client = redis.Redis.from_url(args["url"], protocol=2, socket_timeout=5)
    query = ["FT.SEARCH", args["index"], "*", "NOCONTENT", "LIMIT", "0", "1", "TIMEOUT", "0"]
    if args.get("field"):
        query = [
            "FT.SEARCH",
            args["index"],
            f"{args.get('filter', '*')}=>[KNN 3 @{args['field']} $v]",
            "PARAMS",
            "2",
            "v",
            bytes.fromhex(args["vector"]),
            "NOCONTENT",
            "LIMIT",
            "0",
            "3",
            "TIMEOUT",
            "0",
            "DIALECT",
            "2",
        ]
    sent = answered = empty = retried = 0
    errors = []
    last = first = None
    longest = 0.0
    long_gaps = 0
    long_gap = args.get("long_gap_ms", 50) / 1000
    answered_at = []
    while not os.path.exists(args["stop_file"]):
        sent += 1
        try:
            try:
                reply = client.execute_command(*query)
            except redis.ResponseError:
                if not args.get("retry_vector"):
                    raise
                query[6], args["retry_vector"] = bytes.fromhex(args["retry_vector"]), query[6].hex()
                retried += 1
                reply = client.execute_command(*query)
            for command in args.get("also", []):
                client.execute_command(*command)
            if reply and int(reply[0]) > 0:
                answered += 1
                answered_at.append(time.time())
                now = time.monotonic()
                if last is not None:
                    longest = max(longest, now - last)
                    long_gaps += now - last > long_gap
                first = first or now
                last = now
            else:
                empty += 1
        except redis.RedisError as err:
            errors.append(str(err))
        time.sleep(args.get("interval", 0.005))
    with open(args["out"], "w", encoding="utf-8") as handle:
        json.dump(
            {
                "sent": sent,
                "answered": answered,
                "empty": empty,
                "errors": len(errors),
                "retried": retried,
                "first_errors": sorted(set(errors))[:5],
                "longest_gap_ms": round(longest * 1000, 1),
                "long_gaps": long_gaps,
                "answered_at": answered_at,
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
