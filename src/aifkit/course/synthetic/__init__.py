"""Seeded generators of realistic data for the capstones (track F): nothing downloads.

Each module simulates one kind of data a factory's sectors work with and names the public data
set it stands in for. ``generate(n, seed=...)`` returns a dict of NumPy arrays (one row per
sample in each) with the structure of the real thing (imbalance, seasonality, noise, label
noise), at any size: small at cpu-tiny, millions of samples at the GPU tiers. The same seed gives
the same bytes on every machine; a held-out set is another seed. ``shards.write`` puts a data
set on scratch as fixed-size shards with a checksummed manifest, the way a05 and c04 teach.

- ``fraud``: card transactions, rare fraud in episodes (ULB Credit Card Fraud, IEEE-CIS).
- ``earth_observation``: Sentinel-2 L1C tiles with cloud masks (CloudSEN12).
- ``network_flows``: per-host windows of flow statistics with attacks (CIC-IDS2017, UNSW-NB15).
- ``energy``: hourly PV output of many sites with a cloud forecast (PVGIS, GEFCom2014 solar).
- ``ecg``: single-lead heartbeats in AAMI classes, per patient (MIT-BIH Arrhythmia Database).
"""


def require_shares(**shares: float) -> None:
    """Raise ``ValueError`` naming the first option that is not a share in [0, 1]."""
    for name, value in shares.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], not {value}")
