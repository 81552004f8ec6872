"""Network-flow statistics of hosts, minute by minute, with rare attacks (intrusion detection).

What it simulates
-----------------
A sample is one host's window of ``steps`` consecutive one-minute time steps (default 32): the
flow records (NetFlow/IPFIX, as CICFlowMeter exports them) of one host aggregated per minute into
12 statistics. Most windows are benign traffic; a rare few (``attack_rate``, default 2 %) contain
an attack that starts part-way through the window and lasts to its end. It stands in for

- CIC-IDS2017: I. Sharafaldin, A. H. Lashkari, A. A. Ghorbani (2018), "Toward Generating a New
  Intrusion Detection Dataset and Intrusion Traffic Characterization", ICISSP 2018,
  https://www.unb.ca/cic/datasets/ids-2017.html
- UNSW-NB15: N. Moustafa, J. Slay (2015), "UNSW-NB15: a comprehensive data set for network
  intrusion detection systems", MilCIS 2015, https://research.unsw.edu.au/projects/unsw-nb15-dataset

both of which are tables of flows (hundreds of MB to download and with known labelling errors);
here the flows are already aggregated per host and minute, the way a SOC's detection pipeline
sees them, and nothing downloads.

Structure it reproduces
-----------------------
- Host roles (field ``host_role``): workstations (80 %), servers (16 %) and backup servers
  (``backup_share``, 4 %). Each host has its own traffic level (log-normal, sigma 0.5).
- Seasonality: workstation load follows office hours (a smooth 08:30-18:00 plateau on weekdays,
  8 % of it at weekends, 3 % at night); servers keep 35 % of their load at night. The load has
  minute-to-minute persistence (an AR(1) process in log load, phi = 0.8).
- Heavy tails: flows per minute are Poisson on the load; bytes per flow are log-normal; on top,
  downloads and uploads arrive as Pareto bursts (alpha = 1.1, scale 300 kB, lasting one to a few
  minutes): a per-minute byte threshold fires on benign traffic now and then, as in real networks.
- The classic false alarm: each backup server runs a nightly job (starting between 01:00 and
  01:45, 2.5 to 4 hours long) that streams ~500 MB/min to one off-site replica, outside working
  hours, over one long TCP connection: to a threshold on bytes out or packets it is exfiltration.
  It differs by its size, its schedule and its host (``hour``, ``host_role``).
- Attacks (``label``), each with its own intensity (log-uniform from subtle to loud) and its
  signature over several features and over time; the host is the source (scan, brute force,
  exfiltration: a compromised machine) or the target (denial of service):

  1. port scan: 20 to 3000 probes/min; vertical (60 %: many distinct ports on one host) or
     horizontal (many hosts, a few ports; half of them ICMP ping sweeps); ~90 % of probes fail;
     tiny, very short flows.
  2. brute force: 6 to 200 login attempts/min to one host and one port (SSH/RDP), ~97 % failed,
     ~20 packets and a few kB each.
  3. denial of service (the host is the target): 10**4 to 10**6 packets/min in on/off pulses
     (each minute on with probability 0.7), from tens to thousands of remote hosts, to one
     port, half-open or unanswered (failed); a SYN, UDP or ICMP flood (a third each).
  4. exfiltration: a slow, steady stream of 0.3 to 20 MB/min to one external host over one long
     connection, only outside working hours (weekday 19:00-07:00 or weekends).

  Attack classes are drawn independently of host role; ``attack_class_mix`` sets their shares
  (default 30/25/20/25 %).
- Label noise: as in CIC-IDS2017, whose labels were found to be partly wrong (G. Engelen,
  V. Rimmer, W. Joosen (2021), "Troubleshooting an Intrusion Detection Dataset: the CICIDS2017
  Case Study", IEEE SPW), a fraction ``label_noise`` (default 3 %) of attack windows carries a
  wrong label (a random other class, benign included), and the same expected number of benign
  windows is labelled as a random attack (a window that fell inside a logged attack period).
  ``true_label`` is the simulation's truth, for the teacher; learners train on ``label``.

Fields (first dimension: the window, n)
---------------------------------------
- ``features`` float32 (n, steps, 12), per minute (``FEATURES`` names them, in this order):

  0. ``bytes_out_log10``: log10(1 + bytes the host sent in the minute)
  1. ``bytes_in_log10``: log10(1 + bytes the host received)
  2. ``packets_log10``: log10(1 + packets, both directions)
  3. ``flows_log10``: log10(1 + flows the host took part in, at least one: DNS, NTP...)
  4. ``mean_flow_duration_s``: mean duration of those flows, seconds (0.001 to 3600)
  5. ``distinct_dst_ports``: distinct destination (service) ports of those flows, a count
  6. ``distinct_remote_hosts``: distinct remote addresses, a count
  7. ``failed_share``: share of flows that failed (rejected, reset, unanswered, failed login)
  8. ``tcp_share``, 9. ``udp_share``, 10. ``icmp_share``: protocol shares of flows (sum to 1)
  11. ``external_share``: share of bytes sent that went to addresses outside the organisation

- ``label`` uint8 (n,): the (noisy) attack class, 0 benign, 1 port scan, 2 brute force,
  3 denial of service, 4 exfiltration (``CLASSES``).
- ``true_label`` uint8 (n,): the class the simulation put in (label noise undone).
- ``attack_start`` int16 (n,): the step the true attack begins (``steps // 8`` to
  ``steps - steps // 4``), -1 in a benign window; it lasts to the window's end.
- ``hour`` uint8 (n,): hour of day of the window's first minute (0-23), local time.
- ``weekday`` uint8 (n,): day of week of the window's first minute, 0 Monday to 6 Sunday.
- ``host_role`` uint8 (n,): 0 workstation, 1 server, 2 backup server (``ROLES``).

What a simple baseline misses
-----------------------------
A per-minute threshold on bytes out or packets (flag the window if any minute exceeds it) finds
loud denial of service and fast exfiltration, but it flags every backup server's nightly job and
the heaviest benign bursts (false alarms), and it misses scans and brute force, whose flows are
small, and the slow exfiltration. A model of the whole window, e.g. gradient boosting on per-window
summaries (max, standard deviation, the change from the window's start to its end of each
feature, plus the hour and the host role), or a small recurrent network on the sequence, sees the
change in ports, hosts and failed share, the steadiness and destination of a stream and its time
of day, and separates the backup job from exfiltration: it has clear headroom over the threshold.
For more data than one call holds, call ``generate`` once per shard with seeds ``seed + shard``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aifkit.course.synthetic import require_shares

FEATURES: tuple[str, ...] = (
    "bytes_out_log10",
    "bytes_in_log10",
    "packets_log10",
    "flows_log10",
    "mean_flow_duration_s",
    "distinct_dst_ports",
    "distinct_remote_hosts",
    "failed_share",
    "tcp_share",
    "udp_share",
    "icmp_share",
    "external_share",
)
CLASSES: tuple[str, ...] = ("benign", "port_scan", "brute_force", "dos", "exfiltration")
ROLES: tuple[str, ...] = ("workstation", "server", "backup_server")

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
WORKSTATION, SERVER, BACKUP = 0, 1, 2
SCAN, BRUTE_FORCE, DOS, EXFILTRATION = 1, 2, 3, 4

Array = np.ndarray
LN10 = float(np.log(10.0))


def _office_hours(hour_of_day: Array) -> Array:
    """A smooth plateau from about 08:30 to 18:00 (0 outside, 1 inside)."""
    rise = 1.0 / (1.0 + np.exp(-2.0 * (hour_of_day - 8.5)))
    fall = 1.0 / (1.0 + np.exp(1.5 * (hour_of_day - 18.0)))
    return rise * fall


def _off_hours(minute_of_week: Array) -> Array:
    """True outside working hours: weekends, and weekdays before 07:00 or from 19:00."""
    day = minute_of_week // MINUTES_PER_DAY
    hour = (minute_of_week % MINUTES_PER_DAY) // 60
    return (day >= 5) | (hour < 7) | (hour >= 19)


def _mix_mean(mean_a: Array, weight_a: Array, mean_b: Array | float, weight_b: Array) -> Array:
    """The weighted mean of two groups' means (weights: their counts)."""
    total = weight_a + weight_b
    return np.asarray((mean_a * weight_a + mean_b * weight_b) / np.maximum(total, 1e-12))


def _binomial_approx(rng: np.random.Generator, trials: Array, p: Array) -> Array:
    """Binomial(trials, p) counts by the normal approximation, rounded and kept in range."""
    spread = np.sqrt(trials * p * (1.0 - p))
    draws = trials * p + spread * rng.standard_normal(trials.shape, dtype=np.float32)
    return np.asarray(np.clip(np.round(draws), 0.0, trials))


def _add_flows(
    traffic: dict[str, Array],
    flows: Array,
    *,
    duration_s: float | Array,
    protocol: Array,
    failed: Array | float = 0.0,
    bytes_out: Array | float = 0.0,
    bytes_in: Array | float = 0.0,
    packets: Array | float = 0.0,
    external: float = 0.0,
    hosts: Array | float = 0.0,
    ports: Array | float = 0.0,
) -> None:
    """Add ``flows`` new flows (per window and minute) with their traffic to ``traffic``.

    Means and shares (duration, protocol, external share of bytes out) are re-weighted by the
    flows (or bytes) they are averages over; counts and volumes add up.
    """
    new_out = np.broadcast_to(np.asarray(bytes_out, dtype=np.float64), flows.shape)
    traffic["duration"] = _mix_mean(traffic["duration"], traffic["flows"], duration_s, flows)
    traffic["proto"] = _mix_mean(
        traffic["proto"], traffic["flows"][:, :, None], protocol, flows[:, :, None]
    )
    traffic["external"] = _mix_mean(traffic["external"], traffic["bytes_out"], external, new_out)
    traffic["flows"] = traffic["flows"] + flows
    traffic["failed"] = traffic["failed"] + failed
    traffic["bytes_out"] = traffic["bytes_out"] + new_out
    traffic["bytes_in"] = traffic["bytes_in"] + bytes_in
    traffic["packets"] = traffic["packets"] + packets
    traffic["hosts"] = traffic["hosts"] + hosts
    traffic["ports"] = traffic["ports"] + ports


TCP_ONLY = np.array([1.0, 0.0, 0.0])


def _add_backup_jobs(
    rng: np.random.Generator, traffic: dict[str, Array], backup: Array, minute_of_day: Array
) -> None:
    """The backup servers' nightly job: ~500 MB/min to one off-site replica over 1-4 streams."""
    m, steps = minute_of_day.shape
    job_begin = 60 + rng.integers(0, 46, size=(m, 1))
    job_length = rng.integers(150, 241, size=(m, 1))
    job = backup[:, None] & (minute_of_day >= job_begin) & (minute_of_day < job_begin + job_length)
    job_bytes = np.where(job, 10.0 ** rng.normal(8.7, 0.15, size=(m, steps)), 0.0)
    streams = np.where(job, rng.integers(1, 5, size=(m, steps)), 0).astype(np.float64)
    _add_flows(
        traffic,
        streams,
        duration_s=60.0,
        protocol=TCP_ONLY,
        bytes_out=job_bytes,
        bytes_in=0.01 * job_bytes,
        packets=1.01 * job_bytes / 1400.0,
        external=1.0,
        hosts=job * 1.0,
        ports=job * 1.0,
    )


def _add_attacks(
    rng: np.random.Generator, traffic: dict[str, Array], true_label: Array, active: Array
) -> None:
    """Each attack's signature over the features, from its start (``active``) to the end."""
    m, steps = active.shape
    shape = (m, steps)
    intensity = rng.random((m, 1))  # 0 subtle .. 1 loud
    jitter = rng.lognormal(0.0, 0.3, size=shape)
    variant = rng.random((m, 1))
    cls = true_label[:, None]

    # port scan: many probes, mostly failed; vertical (ports) or horizontal (hosts, ICMP sweeps)
    scan = active & (cls == SCAN)
    probes = np.where(scan, np.round(10.0 ** (1.3 + 2.2 * intensity) * jitter), 0.0)
    vertical = variant < 0.6
    _add_flows(
        traffic,
        probes,
        duration_s=0.01,
        protocol=np.where((variant >= 0.8)[:, :, None], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]),
        failed=np.round(0.9 * probes),
        bytes_out=60.0 * probes,
        bytes_in=20.0 * probes,
        packets=2.0 * probes,
        hosts=np.where(vertical, np.minimum(probes, 1.0), 0.9 * probes),
        ports=np.where(vertical, 0.95 * probes, np.minimum(probes, 3.0)),
    )

    # brute force: repeated failed logins to one host and one port
    brute = active & (cls == BRUTE_FORCE)
    attempts = rng.poisson(np.where(brute, 10.0 ** (0.8 + 1.5 * intensity), 0.0)) * 1.0
    _add_flows(
        traffic,
        attempts,
        duration_s=2.0,
        protocol=TCP_ONLY,
        failed=np.round(0.97 * attempts),
        bytes_out=3000.0 * attempts,
        bytes_in=4000.0 * attempts,
        packets=20.0 * attempts,
        hosts=brute * 1.0,
        ports=(brute & (variant < 0.5)) * 1.0,
    )

    # denial of service (the host is the target): pulsed floods from many remote hosts
    dos = active & (cls == DOS) & (rng.random(shape) < 0.7)
    flood = np.where(dos, 10.0 ** (4.0 + 2.0 * intensity) * jitter**1.5, 0.0)
    kind = np.where(variant < 1 / 3, 0, np.where(variant < 2 / 3, 1, 2))  # SYN, UDP, ICMP
    flood_flows = np.round(flood / np.where(kind == 0, 2.0, 20.0))
    _add_flows(
        traffic,
        flood_flows,
        duration_s=0.5,
        protocol=np.eye(3)[kind],
        failed=np.round(0.8 * flood_flows),
        bytes_out=0.3 * 60.0 * flood,
        bytes_in=flood * np.where(kind == 1, 500.0, 60.0),
        packets=flood,
        hosts=np.minimum(flood_flows, np.round(10.0 ** (1.0 + 2.5 * intensity) * jitter)),
        ports=(flood > 0) * 1.0,
    )

    # exfiltration: a slow, steady stream to one external host, over one long connection
    exfil = active & (cls == EXFILTRATION)
    stream = np.where(exfil, 10.0 ** (5.5 + 1.8 * intensity) * rng.lognormal(0.0, 0.1, shape), 0.0)
    _add_flows(
        traffic,
        exfil * 1.0,
        duration_s=60.0,
        protocol=TCP_ONLY,
        bytes_out=stream,
        bytes_in=0.02 * stream,
        packets=1.02 * stream / 1300.0,
        external=1.0,
        hosts=exfil * 1.0,
        ports=(exfil & (variant < 0.5)) * 1.0,
    )


def generate(
    n: int,
    *,
    seed: int,
    steps: int = 32,
    attack_rate: float = 0.02,
    label_noise: float = 0.03,
    server_share: float = 0.16,
    backup_share: float = 0.04,
    attack_class_mix: Sequence[float] = (0.30, 0.25, 0.20, 0.25),
) -> dict[str, Array]:
    """``n`` windows of ``steps`` one-minute steps of one host's flow statistics (see the module).

    ``attack_rate``: share of windows with an attack; ``label_noise``: share of attack windows
    with a wrong label (and as many benign windows labelled as attacks, in expectation);
    ``server_share``/``backup_share``: shares of windows from servers/backup servers;
    ``attack_class_mix``: shares of scan, brute force, DoS and exfiltration among attacks.
    """
    if n < 0 or steps < 8:
        raise ValueError(f"need n >= 0 and steps >= 8, not n={n}, steps={steps}")
    require_shares(attack_rate=attack_rate, label_noise=label_noise)
    if attack_rate == 1.0:
        raise ValueError("attack_rate must be below 1: some windows must be benign")
    if server_share < 0 or backup_share < 0 or server_share + backup_share > 1:
        raise ValueError("server_share and backup_share must be >= 0 and sum to at most 1")
    mix = np.asarray(attack_class_mix, dtype=np.float64)
    if mix.shape != (4,) or (mix < 0).any() or mix.sum() <= 0:
        raise ValueError(f"attack_class_mix needs 4 non-negative shares, not {attack_class_mix}")
    rng = np.random.default_rng(seed)
    shape = (n, steps)

    # -- windows: host role, true class, start time, attack start ------------------------------
    role = rng.choice(3, size=n, p=[1 - server_share - backup_share, server_share, backup_share])
    is_attack = rng.random(n) < attack_rate
    true_label = np.where(is_attack, rng.choice(4, size=n, p=mix / mix.sum()) + 1, 0)
    start = rng.integers(0, MINUTES_PER_WEEK, size=n)
    redraw = (true_label == EXFILTRATION) & ~_off_hours(start)
    while redraw.any():  # exfiltration happens outside working hours
        start[redraw] = rng.integers(0, MINUTES_PER_WEEK, size=int(redraw.sum()))
        redraw &= ~_off_hours(start)
    attack_start = np.where(is_attack, rng.integers(steps // 8, steps - steps // 4 + 1, n), -1)
    step = np.arange(steps)
    active = step[None, :] >= np.where(is_attack, attack_start, steps)[:, None]

    minute = (start[:, None] + step[None, :]) % MINUTES_PER_WEEK
    minute_of_day = minute % MINUTES_PER_DAY
    weekend = (minute // MINUTES_PER_DAY) >= 5
    office = _office_hours(minute_of_day / 60.0)

    # -- benign load: diurnal/weekly profile x host level x AR(1) persistence ------------------
    is_ws = (role == WORKSTATION)[:, None]
    profile = np.where(
        is_ws,
        0.03 + 0.97 * office * np.where(weekend, 0.08, 1.0),
        0.35 + 0.65 * office * np.where(weekend, 0.3, 1.0),
    )
    host_level = rng.lognormal(0.0, 0.5, size=n)[:, None]
    innovations = rng.standard_normal(shape, dtype=np.float32)
    burst_new = rng.random(shape, dtype=np.float32) < 0.03 * profile
    burst_size = 3e5 * (1.0 + rng.pareto(1.1, size=shape))
    burst_keep = rng.random(shape, dtype=np.float32) < 0.6
    phi, sigma = 0.8, 0.3
    log_load = np.empty(shape, dtype=np.float64)
    burst = np.zeros(shape, dtype=np.float64)
    log_load[:, 0] = sigma * innovations[:, 0]
    burst[:, 0] = np.where(burst_new[:, 0], burst_size[:, 0], 0.0)
    for t in range(1, steps):
        log_load[:, t] = phi * log_load[:, t - 1] + np.sqrt(1 - phi**2) * sigma * innovations[:, t]
        carried = np.where(burst_keep[:, t], burst[:, t - 1], 0.0)
        burst[:, t] = np.maximum(np.where(burst_new[:, t], burst_size[:, t], 0.0), carried)
    load = profile * host_level * np.exp(log_load)

    flow_rate = np.where(is_ws, 40.0, 150.0)
    flows = 1.0 + rng.poisson(flow_rate * load)
    log_out_per_flow = np.where(is_ws, 3.3, 4.0) + 0.25 * rng.standard_normal(shape)
    log_in_per_flow = np.where(is_ws, 4.5, 3.5) + 0.25 * rng.standard_normal(shape)
    upload = rng.random(shape) < 0.3
    bytes_out = flows * np.exp(LN10 * log_out_per_flow) + np.where(upload, burst, 0.0)
    bytes_in = flows * np.exp(LN10 * log_in_per_flow) + np.where(upload, 0.05 * burst, burst)
    packet_size = 900.0 * rng.lognormal(0.0, 0.15, size=shape)
    packets = (bytes_out + bytes_in) / packet_size + 4.0 * flows
    duration = np.where(is_ws, 4.0, 1.0) * rng.lognormal(0.0, 0.5, size=shape)
    duration = np.where(burst > 0, np.maximum(duration, 20.0), duration)
    ports = np.minimum(flows, 1.0 + rng.poisson(np.where(is_ws, 1.0 + 4.0 * profile, 2.0)))
    hosts = 1.0 + _binomial_approx(rng, flows - 1.0, np.where(is_ws, 0.35, 0.5))
    failed = _binomial_approx(rng, flows, rng.beta(2.0, 60.0, size=n)[:, None])
    proto_mean = np.where(is_ws[:, :, None], [0.86, 0.13, 0.01], [0.75, 0.24, 0.01])
    logits = np.log(proto_mean) + 0.35 * rng.standard_normal((n, steps, 3), dtype=np.float32)
    proto = np.exp(logits)
    proto /= proto.sum(axis=2, keepdims=True)
    external = np.where(
        is_ws, rng.beta(6.0, 4.0, size=n)[:, None], rng.beta(2.0, 6.0, size=n)[:, None]
    ) * np.ones(shape)
    traffic = {
        "bytes_out": bytes_out,
        "bytes_in": bytes_in,
        "packets": packets,
        "flows": flows,
        "duration": duration,
        "ports": ports,
        "hosts": hosts,
        "failed": failed,
        "external": external,
        "proto": proto,
    }

    # -- backup jobs and attacks touch few rows: simulate them on those rows only --------------
    rows = np.flatnonzero(is_attack | (role == BACKUP))
    part = {name: np.array(values[rows], dtype=np.float64) for name, values in traffic.items()}
    _add_backup_jobs(rng, part, role[rows] == BACKUP, minute_of_day[rows])
    _add_attacks(rng, part, true_label[rows], active[rows])
    for name, values in part.items():
        traffic[name][rows] = values

    # -- labels as recorded: a documented share is wrong ---------------------------------------
    label = true_label.copy()
    wrong_attack = is_attack & (rng.random(n) < label_noise)
    label[wrong_attack] = (
        true_label[wrong_attack] + rng.integers(1, 5, int(wrong_attack.sum()))
    ) % 5
    benign_flip_rate = label_noise * attack_rate / max(1.0 - attack_rate, 1e-12)
    wrong_benign = ~is_attack & (rng.random(n) < benign_flip_rate)
    label[wrong_benign] = rng.integers(1, 5, int(wrong_benign.sum()))

    features = np.empty((n, steps, len(FEATURES)), dtype=np.float32)
    bytes_out, bytes_in, packets = traffic["bytes_out"], traffic["bytes_in"], traffic["packets"]
    flows, ports, hosts = traffic["flows"], traffic["ports"], traffic["hosts"]
    features[:, :, 0] = np.log10(1.0 + bytes_out)
    features[:, :, 1] = np.log10(1.0 + bytes_in)
    features[:, :, 2] = np.log10(1.0 + packets)
    features[:, :, 3] = np.log10(1.0 + flows)
    features[:, :, 4] = np.clip(traffic["duration"], 0.001, 3600.0)
    features[:, :, 5] = np.minimum(ports, flows)
    features[:, :, 6] = np.minimum(hosts, flows)
    features[:, :, 7] = np.minimum(traffic["failed"] / flows, 1.0)
    features[:, :, 8:11] = traffic["proto"]
    features[:, :, 11] = np.clip(traffic["external"], 0.0, 1.0)
    return {
        "features": features,
        "label": label.astype(np.uint8),
        "true_label": true_label.astype(np.uint8),
        "attack_start": attack_start.astype(np.int16),
        "hour": ((start % MINUTES_PER_DAY) // 60).astype(np.uint8),
        "weekday": (start // MINUTES_PER_DAY).astype(np.uint8),
        "host_role": role.astype(np.uint8),
    }
