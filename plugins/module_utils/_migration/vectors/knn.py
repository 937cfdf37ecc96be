# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The KNN queries the validations send, and how a self-query is judged under every distance metric.

A self-query asks the index for the k nearest documents to a document's own stored vector. Under
L2 and COSINE the document is at distance 0 and must come back (or only documents at distance 0,
duplicates, may take its place). Under IP (1 - dot product) with vectors of different lengths a
document is often not its own nearest neighbour: a longer vector pointing about the same way scores
higher. So a document missing from its own top k is judged by the k documents that came instead:
their distances are computed again from their stored vectors. If the server's distances agree with
those and none of the k is farther than the document itself, the document is rightly outranked;
otherwise the index does not answer what its documents hold. Where the hits cannot be read back
(deleted meanwhile), the query is reported unjudged, not failed.

On a large FLAT index each query is a brute-force pass (24 to 39 ms at 200k x 384) that holds the server, and
the server serves a client that sends several commands (a reader's query, then FT.INFO) one of them between
each two commands of another: sent back to back, the queries made such a reader wait behind one for each of
its commands. `SpacedQueries` leaves the server idle after each query for a multiple of the time it took, so
that a reader's whole exchange fits between two of them.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..core.deps import numpy
from ..redis.keyspace import NO_TIMEOUT
from ..redis.resp import as_float, as_map
from ..redis.snapshot import query_escape
from .quality import distances

KNN_K = 10
# HNSW is approximate: searching wide makes a correct index return (nearly) the exact answer.
APPROXIMATE_EF_RUNTIME = 1000
# How far the server's distance may differ from one computed here: it computes in float32 (and
# normalizes COSINE vectors in their own datatype, float16 or bfloat16), this code in float64.
RELATIVE_TOLERANCE = 1e-3
COSINE_TOLERANCE = 1e-2

FOUND, OUTRANKED, MISSED, UNJUDGED = "found", "outranked", "missed", "unjudged"

Hit = Tuple[bytes, float]


def nearest(client, index: str, field, vector: bytes, k: int = KNN_K, limit: Optional[int] = None) -> List[Hit]:
    """(document id, distance) of the k nearest documents to `vector`, nearest first. `limit` is the
    server's MAXSEARCHRESULTS: no query may ask for more rows than that."""
    rows = k if limit is None else max(0, min(k, limit))
    query = f"*=>[KNN {k} @{query_escape(field.name)} $v"
    params: List[Any] = ["v", vector]
    if field.attrs.algorithm != "flat":
        query += " EF_RUNTIME $ef"
        params += ["ef", str(APPROXIMATE_EF_RUNTIME)]
    reply = client.execute_command(
        "FT.SEARCH",
        index,
        query + " AS __knn_distance]",
        "PARAMS",
        str(len(params)),
        *params,
        "SORTBY",
        "__knn_distance",
        "RETURN",
        "1",
        "__knn_distance",
        "LIMIT",
        "0",
        str(rows),
        *NO_TIMEOUT,
        "DIALECT",
        "2",
    )
    if isinstance(reply, dict) or (isinstance(reply, list) and reply and isinstance(reply[0], dict)):
        top = as_map(reply[0] if isinstance(reply, list) else reply)
        found = []
        for row in top.get("results", []):
            row = as_map(row)
            values = as_map(row.get("extra_attributes") or {})
            found.append((row["id"], as_float(values.get("__knn_distance"), 0.0)))
        return found
    return [
        (doc_id, as_float(as_map(fields or []).get("__knn_distance"), 0.0))
        for doc_id, fields in zip(reply[1::2], reply[2::2])
    ]


class SpacedQueries:
    """`nearest`, each query sent only once the server has been left idle for `idle_ratio` times as long as the
    query before it took (0: back to back). Keeps how long each took (seconds, on the client: the server's time,
    the round trip and the parsing)."""

    def __init__(self, idle_ratio: float):
        self.idle_ratio = idle_ratio
        self.ready_at = 0.0
        self.took: List[float] = []

    def nearest(self, client, index: str, field, vector: bytes, k: int = KNN_K, limit: Optional[int] = None):
        wait = self.ready_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        began = time.monotonic()
        try:
            return nearest(client, index, field, vector, k, limit)
        finally:
            done = time.monotonic()
            self.took.append(done - began)
            self.ready_at = done + self.idle_ratio * (done - began)


def _tolerance(metric: str, own, others) -> Any:
    if metric == "cosine":
        return numpy.full(len(others), COSINE_TOLERANCE)
    own_norm = float(numpy.linalg.norm(own))
    norms = numpy.linalg.norm(others, axis=1)
    scale = own_norm * norms if metric == "ip" else own_norm**2 + norms**2
    return RELATIVE_TOLERANCE * (1.0 + scale)


def judge_self_query(
    key: bytes, own, hits: Sequence[Hit], hit_vectors: Dict[bytes, Optional[Any]], metric: str, k: int
) -> Tuple[str, str]:
    """(verdict, why) of one self-query: FOUND, OUTRANKED (k other documents are at least as near, by
    their own stored vectors), MISSED, or UNJUDGED (the hits could not be read back).

    `own` is the document's stored vector as values, `hit_vectors` the hits' (None: unreadable)."""
    if any(doc_id == key for doc_id, _distance in hits):
        return FOUND, ""
    if len(hits) < k:
        return MISSED, f"{len(hits)} of {k} results, without the document"
    unreadable = [doc_id for doc_id, _distance in hits if hit_vectors.get(doc_id) is None]
    if unreadable:
        return UNJUDGED, f"the vector of {len(unreadable)} result(s) could not be read back"
    own = numpy.asarray(own, dtype=numpy.float64).reshape(1, -1)
    others = numpy.asarray([hit_vectors[doc_id] for doc_id, _distance in hits], dtype=numpy.float64)
    computed = distances(own, others, metric)[0]
    reported = numpy.asarray([distance for _doc_id, distance in hits], dtype=numpy.float64)
    tolerance = _tolerance(metric, own[0], others)
    if (numpy.abs(computed - reported) > tolerance).any():
        return MISSED, "the index's distances differ from those of the stored vectors"
    own_distance = float(distances(own, own, metric)[0, 0])
    if own_distance < float((computed - tolerance).max()):
        return MISSED, "the document is nearer than a result the index returned"
    return OUTRANKED, ""
