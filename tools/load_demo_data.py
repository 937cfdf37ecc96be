#!/usr/bin/env python
"""Load the demo index of `make demo`: the reference walkthrough's product catalogue.

600 hashes `product:<i>` with a text `name`, a tag `category` and an 8-dimensional float32
`embedding` (uniform random, seed 42), indexed by `products` (FLAT, cosine). Connects to
$REDIS_URL. Replaces any earlier demo index and demo keys; touches nothing else.
"""

from __future__ import annotations

import os
import sys
import time

import numpy
import redis

INDEX = "products"
PREFIX = "product"
DIMS = 8
DOCS = 600


def main() -> int:
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), protocol=2)
    if INDEX.encode() in client.execute_command("FT._LIST"):
        client.execute_command("FT.DROPINDEX", INDEX)
    stale = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
    if stale:
        client.delete(*stale)
    client.execute_command(
        "FT.CREATE",
        INDEX,
        "ON",
        "HASH",
        "PREFIX",
        "1",
        PREFIX,
        "SCHEMA",
        "name",
        "TEXT",
        "category",
        "TAG",
        "embedding",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(DIMS),
        "DISTANCE_METRIC",
        "COSINE",
    )
    numpy.random.seed(42)
    vectors = numpy.random.rand(DOCS, DIMS).astype(numpy.float32)
    pipe = client.pipeline(transaction=False)
    for i in range(DOCS):
        pipe.hset(
            f"{PREFIX}:{i}",
            mapping={
                "name": f"product {i}",
                "category": "electronics" if i % 2 == 0 else "books",
                "embedding": vectors[i].tobytes(),
            },
        )
    pipe.execute()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = client.execute_command("FT.INFO", INDEX)
        fields = dict(zip(info[::2], info[1::2]))
        if int(fields[b"num_docs"]) == DOCS and int(fields[b"indexing"]) == 0:
            break
        time.sleep(0.05)
    print(f"load_demo_data: {DOCS} documents in index {INDEX!r} (prefix {PREFIX!r}, {DIMS}-d float32 embeddings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
