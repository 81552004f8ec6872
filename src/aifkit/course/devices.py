"""The per-device peak table: which facts describe the accelerator a notebook runs on.

MFU (model FLOPs utilisation) divides the FLOP/s a training run achieves by the device's peak.
The peaks live in ``aifkit/data/facts.yml`` as ``<device>_<quantity>`` facts (for example
``h100_bf16_dense``); this module maps the name a driver reports (``torch.cuda.get_device_name``:
"NVIDIA H100 80GB HBM3", "NVIDIA GH200 480GB", "AMD Instinct MI250X") to those facts::

    from aifkit.course import devices
    devices.identify("NVIDIA H100 80GB HBM3")           # "h100"
    devices.peak("NVIDIA H100 80GB HBM3", "bf16_dense")  # Fact(value=9.89e14, ...)
"""

from __future__ import annotations

from typing import Final

from aifkit.course import facts
from aifkit.errors import FactsError

#: Device key -> the substrings of a reported name that identify it, tried in this order:
#: "GH200" before "H200" (every GH200 name contains "H200").
DEVICES: Final[dict[str, tuple[str, ...]]] = {
    "gh200": ("GH200",),
    "h200": ("H200",),
    "h100": ("H100",),
    "a100": ("A100",),
    "mi250x": ("MI250X",),
}
#: What the table holds per device (a device may lack one: CDNA2 has no TF32).
QUANTITIES: Final[tuple[str, ...]] = (
    "bf16_dense",
    "tf32_dense",
    "fp32",
    "memory",
    "memory_bandwidth",
)


def identify(device_name: str) -> str | None:
    """The table's key for a reported device name, or None for a device not in the table."""
    upper = device_name.upper()
    for key, markers in DEVICES.items():
        if any(marker in upper for marker in markers):
            return key
    return None


def peak(device_name: str, quantity: str = "bf16_dense") -> facts.Fact:
    """The fact for ``quantity`` of the named device; FactsError when the table has none."""
    if quantity not in QUANTITIES:
        raise FactsError(f"unknown quantity {quantity!r}: use one of {', '.join(QUANTITIES)}")
    key = identify(device_name)
    if key is None:
        raise FactsError(
            f"no peak table entry for device {device_name!r} (known: {', '.join(DEVICES)}): "
            "measure a matmul peak on it, or add its datasheet figures to facts.yml"
        )
    name = f"{key}_{quantity}"
    if name not in facts.all_facts():
        raise FactsError(f"{device_name!r} ({key}) has no {quantity} figure in facts.yml")
    return facts.get(name)


def table() -> dict[str, dict[str, float]]:
    """Every device's figures: ``{"h100": {"bf16_dense": 9.89e14, ...}, ...}`` (SI units)."""
    known = facts.all_facts()
    return {
        key: {q: known[f"{key}_{q}"].value for q in QUANTITIES if f"{key}_{q}" in known}
        for key in DEVICES
    }
