"""Seeded generators of realistic data for the capstones (track F): nothing downloads.

Each module simulates one kind of data a factory's sectors work with and names the public data
set it stands in for. ``generate(n, seed=...)`` returns a dict of NumPy arrays (one row per
sample in each) with the structure of the real thing (imbalance, seasonality, noise, label
noise), at any size: small at cpu-tiny, millions of samples at the GPU tiers. The same seed gives
the same bytes on every machine; a held-out set is another seed. ``shards.write`` puts a data
set on scratch as fixed-size shards with a checksummed manifest, the way a05 and c04 teach.
"""
