"""Bulk import on a distributed engine (Ray): the per-picture analysis an add stores, the manifest's rows,
the bulk writer, and the Ray pipeline that ties them together. Ray itself is imported only by
lookalike.bulk.ray_engine (the optional ``lookalike[ray]`` extra)."""
