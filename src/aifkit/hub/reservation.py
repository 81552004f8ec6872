"""SLURM reservations for a class: read ``scontrol show reservation``, check a profile against one.

A spawn profile may name a reservation (``--reservation``): the nodes a site set aside for a
class's session. ``problems`` says what is wrong with one profile's reservation: a name SLURM
cannot have, a reservation the cluster does not know, one that is over, or one whose
partition or nodes the profile's partition does not reach. ``aifkit hub check`` runs it
(rule ``reservations``) where the cluster can be asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from aifkit import slurm

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ReservationError(RuntimeError):
    """The cluster could not be asked for its reservations."""


@dataclass(frozen=True)
class Reservation:
    """One reservation as ``scontrol show reservation`` prints it."""

    name: str
    start: datetime | None
    end: datetime | None
    nodes: frozenset[str]  # expanded node names
    partition: str  # "" when the reservation names none
    state: str  # ACTIVE or INACTIVE

    def over(self, now: datetime | None = None) -> bool:
        return self.end is not None and self.end <= (now or datetime.now())


def expand_nodes(text: str) -> frozenset[str]:
    """SLURM's host list ("aifkit-n[1-2],gpu07") as names; "(null)" is none."""
    names: set[str] = set()
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text or ""):
        if item in ("(null)", ""):
            continue
        match = re.fullmatch(r"(.*)\[([^\]]*)\](.*)", item)
        if not match:
            names.add(item)
            continue
        head, ranges, tail = match.groups()
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            for number in range(int(low), int(high or low) + 1):
                names.add(f"{head}{number:0{len(low)}d}{tail}")
    return frozenset(names)


def parse(text: str) -> dict[str, Reservation]:
    """The reservations of ``scontrol show reservation`` (multi-line or ``--oneliner``)."""
    found = {}
    for fields in slurm.scontrol_records(text, "ReservationName"):
        if "ReservationName" not in fields:
            continue
        partition = fields.get("PartitionName", "")
        found[fields["ReservationName"]] = Reservation(
            name=fields["ReservationName"],
            start=slurm.parse_time(fields.get("StartTime", "")),
            end=slurm.parse_time(fields.get("EndTime", "")),
            nodes=expand_nodes(fields.get("Nodes", "")),
            partition="" if partition == "(null)" else partition,
            state=fields.get("State", ""),
        )
    return found


def query(timeout_s: float = slurm.QUERY_TIMEOUT_S) -> dict[str, Reservation]:
    """The cluster's reservations; ``ReservationError`` when the controller cannot be asked."""
    try:
        done = slurm.run(["scontrol", "show", "reservation"], timeout_s)
    except slurm.JobError as error:
        raise ReservationError(str(error)) from None
    if done.returncode != 0:
        raise ReservationError(done.stderr.strip() or f"scontrol exited {done.returncode}")
    return parse(done.stdout)


def partition_nodes(partition: str, timeout_s: float = slurm.QUERY_TIMEOUT_S) -> frozenset[str]:
    """The nodes of a partition (``sinfo``); empty when SLURM does not know it."""
    try:
        done = slurm.run(
            ["sinfo", "--noheader", "--partition", partition, "--format=%N"], timeout_s
        )
    except slurm.JobError as error:
        raise ReservationError(str(error)) from None
    return frozenset().union(*(expand_nodes(line) for line in done.stdout.split()))


def qos_names(timeout_s: float = slurm.QUERY_TIMEOUT_S) -> frozenset[str]:
    """The QOS the accounting database knows (``sacctmgr show qos``)."""
    try:
        done = slurm.run(["sacctmgr", "-n", "-P", "show", "qos", "format=name"], timeout_s)
    except slurm.JobError as error:
        raise ReservationError(str(error)) from None
    if done.returncode != 0:
        raise ReservationError(done.stderr.strip() or f"sacctmgr exited {done.returncode}")
    return frozenset(line.strip() for line in done.stdout.splitlines() if line.strip())


def problems(
    name: str,
    partition: str,
    known: dict[str, Reservation],
    nodes_of: dict[str, frozenset[str]],
    now: datetime | None = None,
) -> list[str]:
    """What is wrong with a profile on ``partition`` asking for reservation ``name``."""
    found = known.get(name)
    if found is None:
        names = ", ".join(sorted(known)) or "none"
        return [f"the cluster has no reservation {name!r} (it has: {names})"]
    if found.over(now):
        return [f"reservation {name!r} ended at {found.end:%Y-%m-%d %H:%M}"]
    if found.partition and found.partition != partition:
        return [f"reservation {name!r} is for partition {found.partition}, not {partition}"]
    reachable = nodes_of.get(partition, frozenset())
    if found.nodes and reachable and not found.nodes & reachable:
        return [
            f"reservation {name!r} holds nodes {', '.join(sorted(found.nodes))}, none of them "
            f"in partition {partition}"
        ]
    return []


__all__ = [
    "NAME",
    "Reservation",
    "ReservationError",
    "expand_nodes",
    "parse",
    "partition_nodes",
    "problems",
    "qos_names",
    "query",
]
