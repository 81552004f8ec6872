"""Heartbeats from an electrocardiogram (ECG), one beat per sample, labelled with the AAMI classes.

What it simulates
-----------------
Single-lead ECG beats (like MIT-BIH's modified lead II) cut as a window of ``beat_samples``
samples (default 180 at 360 Hz: 0.5 s, 200 ms before the R peak and 300 ms after it) from the
records of ``n_patients`` simulated patients (default 48, as MIT-BIH's 48 records). It stands in
for the **MIT-BIH Arrhythmia Database** (Moody G.B., Mark R.G., "The impact of the MIT-BIH
Arrhythmia Database", IEEE Eng. Med. Biol. 20(3):45-50, 2001; Goldberger et al., PhysioNet,
Circulation 101(23):e215-e220, 2000; https://physionet.org/content/mitdb/), with the beat labels
grouped into the five classes of the ANSI/AAMI EC57 standard, as in de Chazal, O'Dwyer, Reilly,
"Automatic classification of heartbeats using ECG morphology and heartbeat interval features",
IEEE Trans. Biomed. Eng. 51(7):1196-1206, 2004.

**The data is synthetic and contains no personal data**: every patient is a draw of random
parameters. The capstone (f05-health-signals) nevertheless treats it with the rules for health
data on a shared machine: the patient ids are pseudonyms, the data stays in the project's
scratch folder with restricted permissions, and nothing links a beat to a person.

How a beat is made
------------------
The waveform follows the dynamical model ECGSYN of McSharry, Clifford, Tarassenko, Smith, "A
dynamical model for generating synthetic electrocardiogram signals", IEEE Trans. Biomed. Eng.
50(3):289-294, 2003, in the integrated form of its z equation (without the slow pull to the
baseline): each of the waves P, Q, R, S, T is a Gaussian in the cardiac phase, with the
angles and widths of the paper's Table 1 (P -pi/3, 0.25 rad; Q -pi/12, 0.1; R 0, 0.1; S pi/12,
0.1; T pi/2, 0.4) and peak ratios a_i b_i^2 (Q -0.17, R 1, S -0.25, T 0.4 of the R peak; P 0.15
rather than the paper's 0.25, which would give P waves above the clinical 0.25 mV).
The model's heart-rate scaling is kept: widths scale with sqrt(RR) and the P and T positions with
RR^0.75 (RR of the preceding interval, in s), so the QT interval shortens at fast rates. Each
patient has its own angles, widths, amplitudes (R peak about 1.1 mV, a tenth of the patients
with an inverted T), heart rate (50-120 bpm), ectopic morphologies and noise, so an
**inter-patient** split (train on some patients, test on others: here, another seed) is harder
than a random split of beats, as de Chazal et al. showed.

The classes (``label``, with the default rates of MIT-BIH's ~110 000 beats; option
``class_rates``):

- 0 N (88.5 %), normal beats: sinus P, narrow QRS (about 30 ms wide at half height, 80-100 ms
  in all), regular RR (rr_prev and rr_next within about 3 % of each other; the patient's rate
  drifts by about 7 % around its mean).
  About 15 % of the patients (``af_fraction``) are in **atrial fibrillation**: their N beats have
  no P wave, small 4-8 Hz fibrillatory waves, and an irregular RR (spread +-18 %), the classic
  false positive of an RR-only detector of ectopic beats.
- 1 S supraventricular ectopic (3 %): premature (rr_prev 55-85 % of the patient's current RR),
  normal QRS, abnormal P (inverted, smaller or displaced: an ectopic atrial focus), and a
  non-compensatory pause (rr_next about one RR: the sinus node is reset).
- 2 V ventricular ectopic (7 %): premature, no P wave, a wide bizarre QRS (main deflection with a
  Gaussian sd of 30-50 ms, about 75 ms wide at half height, and a notch, either polarity, per
  patient), a discordant T wave, and a full compensatory pause (rr_prev + rr_next = 2 RR).
- 3 F fusion (1 %): a blend w N + (1 - w) V of the patient's two QRST complexes (w in 0.3-0.7),
  sinus P, slightly premature.
- 4 Q unknown/paced (0.5 %): ventricular paced beats of a few paced patients: a pacemaker spike
  40-60 ms before a wide QRS, and the pacemaker's fixed rate (RR spread 0.5 %).

Ectopic beats are concentrated in a few patients (a Dirichlet draw per class), as in MIT-BIH
where a handful of records hold most V and F beats; S beats only occur in patients not in
atrial fibrillation, Q beats only in the paced patients.

Noise, added to every beat (``noise_scale`` multiplies it; 0 gives the clean waveform):
baseline wander (a respiration sinusoid of 0.15-0.3 Hz, about 0.08 mV, plus an electrode
offset), muscle (EMG) noise (white, about 0.015 mV sd, each patient's level log-normal), 50 Hz
powerline interference (``powerline_hz``, about 0.01 mV), and noisy episodes (15 % of the beats,
noise x3); the RMS of the noise in a window is 0.02 / 0.1 / 0.4 mV (5th / 50th / 95th
percentile). **Label noise**: a fraction ``label_noise`` (default 0.3 %) of the beats carry the
label of the class an annotator confuses them with (N->S, S->N, V->F, F->N, Q->N); with the
default rates that makes about 8 % of the S labels wrong, the hardest part of the benchmark.
``with_clean_label=True`` adds the true class as ``label_clean``.

Fields (one row per beat; the rows are independent beats in random order)
-------------------------------------------------------------------------
- ``beats``       (n, beat_samples) float32, mV: the window; the R peak (or the main QRS
  deflection) at sample ``2 * beat_samples // 5`` (72), sampled at ``fs_hz``.
- ``label``       (n,) uint8, 0-4: AAMI class N, S, V, F, Q (with label noise).
- ``rr_prev_s``   (n,) float32, s: interval from the previous R peak to this one.
- ``rr_next_s``   (n,) float32, s: interval from this R peak to the next one.
- ``patient``     (n,) int16: pseudonymous patient id (1000-32767), unique within one call; another
  seed draws other patients under other pseudonyms, which may collide by chance (about once in
  14 pairs of seeds): to pool seeds, group by (seed, patient).
- ``noise_level`` (n,) float32, mV: RMS of the noise added to this window (wander, EMG,
  powerline together), an estimate of signal quality a model may use or a learner may filter on.

What a simple baseline misses
-----------------------------
A logistic regression on the RR features only (rr_prev, rr_next, their ratio; balanced class
weights) finds the premature beats but confuses S with V (both premature), calls the
atrial-fibrillation patients' irregular N beats ectopic, and cannot see F or Q (their RR looks
normal, Q's merely regular): trained on 12 000 beats of one seed and scored on 12 000 beats of
new patients (another seed), macro-F1 0.35-0.42, balanced accuracy 0.5-0.7 (trivial: 0.2). The
waveform separates them: the wide QRS and missing P of V, the abnormal P of S, the pacing spike of
Q, the blend of F. A small gradient-boosted model (20 rounds) on the beat averaged to 20 values
plus the RR features reaches macro-F1 0.6-0.8 (balanced accuracy 0.7-0.9) on new patients, and
about 0.9 on new beats of its training patients (``patient_seed``): the inter-patient gap.
Further headroom: RR normalised by each patient's median RR (group by ``patient``), a beat
relative to the patient's average beat, the full 180 samples, a 1D CNN, more rounds.

Scale: a beat is 180 float32 values (720 bytes). 10**6 beats (1.8e8 values, 720 MB) take about
16 s and 1.3 GB of memory on one core; the time and memory grow linearly with ``n``. At the GPU
tiers write shards of 2 * 10**5 beats (144 MB, about 3 s each) with ``shards.write``, one
``generate`` per shard with its own seed; shards with different seeds hold different patients,
so name the seeds per split (or use ``patient_seed`` for more beats of the same patients).

Not simulated: bundle-branch-block beats (AAMI N with a wide QRS), interpolated or multiform V
beats, runs (bigeminy, tachycardia), a second lead, and the beat-to-beat context of a record (each
row is an independent beat; its neighbours appear only through the RR intervals and the previous
T / next P waves that fall into the window).
"""

from __future__ import annotations

from typing import Final

import numpy as np

CLASS_NAMES: Final = ("N", "S", "V", "F", "Q")
DEFAULT_CLASS_RATES: Final = (0.885, 0.03, 0.07, 0.01, 0.005)
#: The class an annotator mistakes each class for (the label-noise target), by class index.
CONFUSED_WITH: Final = np.array([1, 0, 3, 0, 0], dtype=np.uint8)

# McSharry et al. 2003, Table 1: angles (rad) and widths (rad) of P, Q, R, S, T, and the peak
# ratios a_i * b_i**2 relative to R (P lowered from 0.25 to 0.15, see the module docstring).
_THETA: Final = np.array([-np.pi / 3, -np.pi / 12, 0.0, np.pi / 12, np.pi / 2])
_WIDTH: Final = np.array([0.25, 0.1, 0.1, 0.1, 0.4])
_PEAK_RATIO: Final = np.array([0.15, -1 / 6, 1.0, -0.25, 0.4])

# Gaussian components of a window: the patient's P Q R S T, the ventricular complex (main, notch,
# T), the pacing spike, the previous beat's T and the next beat's P.
_P, _Q, _R, _S, _T, _VMAIN, _VNOTCH, _VT, _SPIKE, _PREV_T, _NEXT_P = range(11)
_COMPONENTS: Final = 11
_CHUNK: Final = 4096  # beats per block of waveform synthesis (temporaries stay in cache)


def _patients(
    rng: np.random.Generator, n_patients: int, af_fraction: float, n_paced: int
) -> dict[str, np.ndarray]:
    """Per-patient parameters: rhythm, normal and ectopic morphology, noise."""
    p = n_patients
    ln = rng.lognormal
    hr_bpm = np.clip(rng.normal(75.0, 12.0, p), 50.0, 120.0)
    paced = np.zeros(p, dtype=bool)
    paced[rng.choice(p, size=n_paced, replace=False)] = True
    af = (rng.random(p) < af_fraction) & ~paced
    gain = 1.1 * ln(0.0, 0.25, p)  # R peak, mV
    ratio = _PEAK_RATIO * ln(0.0, [0.3, 0.4, 0.0, 0.4, 0.35], (p, 5))
    ratio[:, _T] *= np.where(rng.random(p) < 0.1, -1.0, 1.0)  # inverted T in a tenth
    theta = _THETA + rng.normal(0.0, [0.06, 0.02, 0.0, 0.02, 0.1], (p, 5))
    width = _WIDTH * ln(0.0, 0.15, (p, 5))
    v_sign = np.where(rng.random(p) < 0.5, 1.0, -1.0)
    v_main = v_sign * gain * rng.uniform(0.8, 1.8, p)
    notch_side = np.where(rng.random(p) < 0.5, 1.0, -1.0)
    return {
        "rr_mean": (60.0 / hr_bpm),
        "paced": paced,
        "af": af,
        "pacing_rr": 60.0 / rng.uniform(65.0, 80.0, p),
        "amp": gain[:, None] * ratio,
        "theta": theta,
        "width": width,
        # ectopic atrial P of the S beats: amplitude factor, angle shift, width factor
        "s_p_factor": rng.uniform(-1.0, 0.5, p),
        "s_p_shift": rng.uniform(-0.15, 0.25, p),
        "s_p_width": rng.uniform(0.7, 1.4, p),
        # ventricular complex (also the paced QRS): main, notch, discordant T
        "v_main_amp": v_main,
        "v_main_sd": rng.uniform(0.030, 0.050, p),
        "v_notch_amp": -v_main * rng.uniform(0.2, 0.6, p),
        "v_notch_at": notch_side * rng.uniform(0.020, 0.050, p),
        "v_notch_sd": rng.uniform(0.012, 0.025, p),
        "v_t_amp": -v_main * rng.uniform(0.25, 0.5, p),
        "v_t_at": rng.uniform(0.25, 0.33, p),
        "v_t_sd": rng.uniform(0.050, 0.080, p),
        "spike_amp": rng.uniform(1.0, 3.0, p),
        "spike_at": -rng.uniform(0.040, 0.060, p),
        "f_wave_amp": rng.uniform(0.02, 0.08, p),
        "f_wave_hz": rng.uniform(4.0, 8.0, p),
        "wander_amp": 0.08 * ln(0.0, 0.5, p),
        "resp_hz": rng.uniform(0.15, 0.3, p),
        "offset_sd": 0.1 * ln(0.0, 0.5, p),
        "emg_sd": 0.015 * ln(0.0, 0.5, p),
        "powerline_amp": 0.01 * ln(0.0, 0.7, p),
    }


def _assign_patients(
    rng: np.random.Generator, label: np.ndarray, pat: dict[str, np.ndarray]
) -> np.ndarray:
    """Patient index of each beat: ectopic classes concentrated in a few patients."""
    n_patients = len(pat["paced"])
    paced, af = pat["paced"], pat["af"]
    concentration = (5.0, 0.3, 0.3, 0.2, 1.0)
    allowed = (~paced, ~paced & ~af, ~paced, ~paced, paced)
    patient = np.empty(len(label), dtype=np.int64)
    for cls in range(5):
        weights = rng.dirichlet(np.full(n_patients, concentration[cls])) * allowed[cls]
        if not allowed[cls].any():
            weights = np.ones(n_patients)
        weights = weights + 1e-12 * allowed[cls]
        rows = np.flatnonzero(label == cls)
        patient[rows] = rng.choice(n_patients, size=len(rows), p=weights / weights.sum())
    return patient


def _rhythm(
    rng: np.random.Generator, label: np.ndarray, patient: np.ndarray, pat: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """rr_prev and rr_next (s) of each beat from its class and its patient's rhythm."""
    n = len(label)
    rr = pat["rr_mean"][patient] * np.exp(rng.normal(0.0, 0.07, n))  # the current sinus RR
    prev = rr * np.exp(rng.normal(0.0, 0.03, n))
    nxt = rr * np.exp(rng.normal(0.0, 0.03, n))
    af = pat["af"][patient] & (label == 0)
    prev[af] = rr[af] * np.exp(rng.normal(0.0, 0.18, int(af.sum())))
    nxt[af] = rr[af] * np.exp(rng.normal(0.0, 0.18, int(af.sum())))
    prematurity = rng.uniform(0.55, 0.85, n)
    s, v, f, q = (label == c for c in (1, 2, 3, 4))
    prev[s] = rr[s] * prematurity[s]
    nxt[s] = rr[s] * rng.uniform(0.95, 1.15, int(s.sum()))
    prev[v] = rr[v] * prematurity[v]
    nxt[v] = 2.0 * rr[v] - prev[v] + rr[v] * rng.normal(0.0, 0.02, int(v.sum()))
    prev[f] = rr[f] * rng.uniform(0.85, 1.0, int(f.sum()))
    nxt[f] = rr[f] * rng.uniform(1.0, 1.15, int(f.sum()))
    pacing = pat["pacing_rr"][patient[q]]
    prev[q] = pacing * np.exp(rng.normal(0.0, 0.005, int(q.sum())))
    nxt[q] = pacing * np.exp(rng.normal(0.0, 0.005, int(q.sum())))
    return prev, nxt


def _components(
    rng: np.random.Generator,
    label: np.ndarray,
    patient: np.ndarray,
    rr_prev: np.ndarray,
    rr_next: np.ndarray,
    pat: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak (mV), centre (s from the R peak) and sd (s) of each beat's Gaussian components."""
    n = len(label)
    amp = np.zeros((n, _COMPONENTS))
    centre = np.zeros((n, _COMPONENTS))
    sd = np.full((n, _COMPONENTS), 0.01)
    rr_morph = np.clip(rr_prev, 0.3, 2.0)[:, None]
    rr_sinus = pat["rr_mean"][patient][:, None]
    # normal P Q R S T (ECGSYN's heart-rate scaling: widths ~ sqrt(RR), P and T ~ RR**0.75)
    theta, width = pat["theta"][patient], pat["width"][patient]
    scale = np.sqrt(rr_morph) * np.ones((1, 5))
    scale[:, [_P, _T]] = rr_morph**0.75
    amp[:, :5] = pat["amp"][patient] * np.exp(rng.normal(0.0, 0.05, (n, 5)))
    centre[:, :5] = theta * scale / (2 * np.pi)
    sd[:, :5] = width * np.sqrt(rr_morph) / (2 * np.pi)
    # ventricular complex
    amp_v = np.exp(rng.normal(0.0, 0.05, (n, 3)))
    amp[:, _VMAIN] = pat["v_main_amp"][patient] * amp_v[:, 0]
    sd[:, _VMAIN] = pat["v_main_sd"][patient]
    amp[:, _VNOTCH] = pat["v_notch_amp"][patient] * amp_v[:, 1]
    centre[:, _VNOTCH] = pat["v_notch_at"][patient]
    sd[:, _VNOTCH] = pat["v_notch_sd"][patient]
    amp[:, _VT] = pat["v_t_amp"][patient] * amp_v[:, 2]
    centre[:, _VT] = pat["v_t_at"][patient] * rr_morph[:, 0] ** 0.75
    sd[:, _VT] = pat["v_t_sd"][patient]
    amp[:, _SPIKE] = pat["spike_amp"][patient]
    centre[:, _SPIKE] = pat["spike_at"][patient]
    sd[:, _SPIKE] = 0.0015
    # neighbours: the previous beat's T and the next beat's P (sinus beats of the patient)
    amp[:, _PREV_T] = amp[:, _T]
    centre[:, _PREV_T] = -rr_prev + theta[:, _T] * rr_sinus[:, 0] ** 0.75 / (2 * np.pi)
    sd[:, _PREV_T] = width[:, _T] * np.sqrt(rr_sinus[:, 0]) / (2 * np.pi)
    amp[:, _NEXT_P] = amp[:, _P]
    centre[:, _NEXT_P] = rr_next + theta[:, _P] * rr_sinus[:, 0] ** 0.75 / (2 * np.pi)
    sd[:, _NEXT_P] = width[:, _P] * np.sqrt(rr_sinus[:, 0]) / (2 * np.pi)

    # which components each class has
    normal_qrst = [_Q, _R, _S, _T]
    ventricular = [_VMAIN, _VNOTCH, _VT]
    s, v, f, q = (label == c for c in (1, 2, 3, 4))
    af = pat["af"][patient]
    amp[~(v | f | q), _VMAIN : _VT + 1] = 0.0
    amp[~q, _SPIKE] = 0.0
    for rows in (v, q):
        amp[rows, _P] = 0.0
        amp[np.ix_(rows, normal_qrst)] = 0.0
    amp[af, _P] = 0.0
    amp[af | pat["paced"][patient], _NEXT_P] = 0.0
    amp[q, _PREV_T] = 0.0
    # S: ectopic atrial P
    ps = patient[s]
    amp[s, _P] *= pat["s_p_factor"][ps]
    centre[s, _P] += pat["s_p_shift"][ps] * rr_morph[s, 0] ** 0.75 / (2 * np.pi)
    sd[s, _P] *= pat["s_p_width"][ps]
    # F: blend of the two complexes
    w = rng.uniform(0.3, 0.7, int(f.sum()))
    amp[np.ix_(f, normal_qrst)] *= w[:, None]
    amp[np.ix_(f, ventricular)] *= 1.0 - w[:, None]
    # R-peak detection jitter shifts the whole beat
    centre += rng.normal(0.0, 0.0015, (n, 1))
    return amp, centre, sd


def generate(
    n: int,
    *,
    seed: int,
    n_patients: int = 48,
    class_rates: tuple[float, float, float, float, float] = DEFAULT_CLASS_RATES,
    beat_samples: int = 180,
    fs_hz: float = 360.0,
    af_fraction: float = 0.15,
    n_paced: int = 2,
    noise_scale: float = 1.0,
    powerline_hz: float = 50.0,
    label_noise: float = 0.003,
    with_clean_label: bool = False,
    patient_seed: int | None = None,
) -> dict[str, np.ndarray]:
    """``n`` heartbeats of ``n_patients`` patients; one row per beat (see the module doc).

    The patients are drawn from ``patient_seed`` (default: ``seed``), the beats from ``seed``:
    ``generate(n, seed=2, patient_seed=0)`` gives new beats of the patients of ``seed=0``, the
    test set of an intra-patient split; ``seed=1`` gives new patients (inter-patient split).
    """
    if n < 0 or n_patients < 1 or beat_samples < 8:
        raise ValueError(f"need n >= 0, n_patients >= 1, beat_samples >= 8: {n}, {n_patients}")
    rates = np.asarray(class_rates, dtype=float)
    if rates.shape != (5,) or (rates < 0).any() or not np.isclose(rates.sum(), 1.0):
        raise ValueError(f"class_rates must be 5 non-negative rates summing to 1, not {rates}")
    patient_rng = np.random.default_rng([seed if patient_seed is None else patient_seed, 1])
    pat = _patients(patient_rng, n_patients, af_fraction, min(n_paced, n_patients))
    pseudonyms = patient_rng.choice(
        np.arange(1000, 32768, dtype=np.int16), n_patients, replace=False
    )
    rng = np.random.default_rng(seed)

    label = rng.choice(5, size=n, p=rates).astype(np.uint8)
    patient = _assign_patients(rng, label, pat)
    rr_prev, rr_next = _rhythm(rng, label, patient, pat)
    amp, centre, sd = _components(rng, label, patient, rr_prev, rr_next, pat)

    pre = 2 * beat_samples // 5
    t = ((np.arange(beat_samples) - pre) / fs_hz).astype(np.float32)
    beats = np.empty((n, beat_samples), dtype=np.float32)
    noise_level = np.empty(n, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(n, start + _CHUNK))
        beats[rows] = _waveform(t, amp[rows], centre[rows], sd[rows])
        _add_af_waves(rng, beats[rows], t, patient[rows], pat)
        noise = _noise(rng, t, patient[rows], pat, powerline_hz) * np.float32(noise_scale)
        beats[rows] += noise
        noise_level[rows] = np.sqrt(np.mean(np.square(noise), axis=1))

    clean = label.copy()
    wrong = rng.random(n) < label_noise
    label[wrong] = CONFUSED_WITH[label[wrong]]
    fields = {
        "beats": beats,
        "label": label,
        "rr_prev_s": rr_prev.astype(np.float32),
        "rr_next_s": rr_next.astype(np.float32),
        "patient": pseudonyms[patient],
        "noise_level": noise_level,
    }
    if with_clean_label:
        fields["label_clean"] = clean
    return fields


def _waveform(t: np.ndarray, amp: np.ndarray, centre: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Sum of each row's Gaussian components on the time grid ``t`` (float32)."""
    out = np.zeros((len(amp), len(t)), dtype=np.float32)
    for k in range(amp.shape[1]):
        first = centre[:, k] - 5 * sd[:, k]
        last = centre[:, k] + 5 * sd[:, k]
        rows = np.flatnonzero((amp[:, k] != 0) & (last > t[0]) & (first < t[-1]))
        if len(rows) == 0:
            continue
        cols = slice(
            int(np.searchsorted(t, first[rows].min())),
            int(np.searchsorted(t, last[rows].max(), side="right")),
        )
        z = t[None, cols] - centre[rows, k, None].astype(np.float32)
        z /= sd[rows, k, None].astype(np.float32)
        np.square(z, out=z)
        z *= np.float32(-0.5)
        np.exp(z, out=z)
        z *= amp[rows, k, None].astype(np.float32)
        if len(rows) == len(amp):
            out[:, cols] += z
        else:
            out[rows, cols] += z
    return out


def _add_af_waves(
    rng: np.random.Generator,
    beats: np.ndarray,
    t: np.ndarray,
    patient: np.ndarray,
    pat: dict[str, np.ndarray],
) -> None:
    """Fibrillatory f-waves (4-8 Hz) on the beats of the patients in atrial fibrillation."""
    rows = np.flatnonzero(pat["af"][patient])
    phase = rng.uniform(0.0, 2 * np.pi, len(rows))
    p = patient[rows]
    wt = 2 * np.pi * pat["f_wave_hz"][:, None] * t[None, :]
    beats[rows] += _sinusoid(pat["f_wave_amp"][p], phase, np.sin(wt)[p], np.cos(wt)[p])


def _noise(
    rng: np.random.Generator,
    t: np.ndarray,
    patient: np.ndarray,
    pat: dict[str, np.ndarray],
    powerline_hz: float,
) -> np.ndarray:
    """Baseline wander + EMG + powerline noise (mV, float32) for each beat's window."""
    n = len(patient)
    episode = np.where(rng.random(n) < 0.15, 3.0, 1.0)  # motion / noisy episodes
    # a sin(w t + phi) = a cos(phi) sin(w t) + a sin(phi) cos(w t): per-patient or fixed bases
    resp_phase = rng.uniform(0.0, 2 * np.pi, n)
    resp = 2 * np.pi * pat["resp_hz"][:, None] * t[None, :]
    wander_amp = pat["wander_amp"][patient] * episode
    noise = _sinusoid(wander_amp, resp_phase, np.sin(resp)[patient], np.cos(resp)[patient])
    offset = pat["offset_sd"][patient] * episode * rng.standard_normal(n)
    noise += offset.astype(np.float32)[:, None]
    line_phase = rng.uniform(0.0, 2 * np.pi, n)
    line = 2 * np.pi * powerline_hz * t
    line_amp = pat["powerline_amp"][patient] * episode
    noise += _sinusoid(line_amp, line_phase, np.sin(line)[None, :], np.cos(line)[None, :])
    emg = rng.standard_normal((n, len(t)), dtype=np.float32)
    emg *= (pat["emg_sd"][patient] * episode).astype(np.float32)[:, None]
    noise += emg
    return noise


def _sinusoid(
    amplitude: np.ndarray, phase: np.ndarray, sin_wt: np.ndarray, cos_wt: np.ndarray
) -> np.ndarray:
    """``amplitude * sin(w t + phase)`` per row (float32), from the bases sin(w t), cos(w t)."""
    a_cos = (amplitude * np.cos(phase)).astype(np.float32)[:, None]
    a_sin = (amplitude * np.sin(phase)).astype(np.float32)[:, None]
    out: np.ndarray = a_cos * sin_wt.astype(np.float32) + a_sin * cos_wt.astype(np.float32)
    return out
