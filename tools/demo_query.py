#!/usr/bin/env python
"""The walkthrough's check after quantization: query `products` with product 0's vector, encoded as
float16 like the new index expects, and print the three nearest products as JSON."""

from __future__ import annotations

import json
import os
import sys

import numpy
import redis

DIMS, DOCS = 8, 600


def main() -> int:
    numpy.random.seed(42)  # the vectors tools/load_demo_data.py stored
    vectors = numpy.random.rand(DOCS, DIMS).astype(numpy.float32)
    datatype = sys.argv[1] if len(sys.argv) > 1 else "float16"
    query = vectors[0].astype(numpy.float16 if datatype == "float16" else numpy.float32).tobytes()
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"), protocol=2)
    reply = client.execute_command(
        "FT.SEARCH",
        "products",
        "*=>[KNN 3 @embedding $v AS distance]",
        "PARAMS",
        "2",
        "v",
        query,
        "SORTBY",
        "distance",
        "RETURN",
        "2",
        "name",
        "distance",
        "DIALECT",
        "2",
    )
    hits = [dict(zip([f.decode() for f in fields[::2]], [v.decode() for v in fields[1::2]])) for fields in reply[2::2]]
    print(json.dumps(hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
