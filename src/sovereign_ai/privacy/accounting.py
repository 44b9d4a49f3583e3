"""Privacy accounting: what a history of Gaussian mechanisms costs, as (ε, δ).

The analysis is Google's ``dp-accounting`` library (the accountants behind TensorFlow Privacy and
the DP libraries), never re-derived here:

- **RDP** (Mironov, "Rényi Differential Privacy", CSF 2017; the subsampled Gaussian of Mironov,
  Talwar and Zhang 2019): ``dp_accounting.rdp.RdpAccountant``. Its (ε, δ) conversion is the tighter
  one of Balle et al., "Hypothesis Testing Interpretations and Rényi Differential Privacy"
  (AISTATS 2020) — what both libraries use now. :func:`classic_rdp_epsilon` gives the classic
  ``ε = min_α RDP(α) + log(1/δ) / (α - 1)`` of Mironov 2017 too, for comparison with older papers.
- **PLD** (privacy loss distributions; Meiser and Mohammadi 2018, Koskela et al. 2020,
  Doroshenko et al. 2022): ``dp_accounting.pld.PLDAccountant``, numerically tight.

One event is a Gaussian mechanism with noise multiplier ``σ`` (noise std / sensitivity), run
``steps`` times, each on a sample of the population drawn with probability ``q``. Sampling must
match its accounting (Chua et al., "How Private are DP-SGD Implementations?", ICML 2024):
amplification by sampling is only valid for *Poisson* sampling, so an event records its sampler and
a shuffled (fixed-size, without replacement) sampler with ``q < 1`` is refused rather than
accounted as if it were Poisson, which would understate ε.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

import dp_accounting
import numpy as np
from dp_accounting import pld, rdp
from dp_accounting.rdp import rdp_privacy_accountant
from numpy.typing import NDArray

from sovereign_ai.errors import ConfigError

__all__ = [
    "Accounting",
    "PrivacyEvent",
    "Sampler",
    "calibrate_noise_multiplier",
    "classic_rdp_epsilon",
    "epsilon_spent",
]


class Accounting(StrEnum):
    """Which accountant composes the events."""

    RDP = "rdp"
    """Rényi DP with the tighter (ε, δ) conversion (Balle et al. 2020)."""
    PLD = "pld"
    """Privacy loss distributions: the tightest of the two."""


class Sampler(StrEnum):
    """How each step's participants were drawn."""

    POISSON = "poisson"
    """Each member independently with probability ``q``: amplification applies."""
    FULL = "full"
    """Everyone, every step (``q = 1``)."""
    SHUFFLE = "shuffle"
    """Fixed-size batches from a shuffle: no Poisson amplification may be claimed (``q < 1``)."""

    @classmethod
    def for_rate(cls, sampling_rate: float) -> Sampler:
        """``full`` for a sampling rate of 1, ``poisson`` below it."""
        return cls.FULL if sampling_rate == 1.0 else cls.POISSON


@dataclass(frozen=True)
class PrivacyEvent:
    """``steps`` runs of a Gaussian mechanism on samples drawn with probability ``q``.

    Parameters
    ----------
    noise_multiplier
        ``σ`` > 0: the noise's standard deviation divided by the query's L2 sensitivity.
    sampling_rate
        ``q`` in ``(0, 1]``.
    steps
        How many times (>= 1).
    sampler
        How each sample was drawn; must be ``poisson`` when ``q < 1`` and ``full`` when ``q = 1``.
    """

    noise_multiplier: float
    sampling_rate: float
    steps: int
    sampler: Sampler = Sampler.POISSON

    def __post_init__(self) -> None:
        if not math.isfinite(self.noise_multiplier) or self.noise_multiplier <= 0:
            raise ConfigError(
                "The 'noise_multiplier' of a PrivacyEvent must be a finite number > 0; got "
                f"{self.noise_multiplier!r} instead."
            )
        if not 0 < self.sampling_rate <= 1:
            raise ConfigError(
                "The 'sampling_rate' of a PrivacyEvent must be in (0, 1]; got "
                f"{self.sampling_rate!r} instead."
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(
                f"The 'steps' of a PrivacyEvent must be an integer >= 1; got {self.steps!r}."
            )
        sampler = Sampler(self.sampler)
        if sampler is Sampler.SHUFFLE and self.sampling_rate < 1:
            raise ConfigError(
                f"A PrivacyEvent with a shuffle sampler and sampling rate {self.sampling_rate} "
                "cannot be accounted: amplification by sampling holds for Poisson sampling only, "
                "and accounting shuffled batches as Poisson understates ε (Chua et al. 2024). "
                "Draw the batches (or cohorts) by Poisson sampling."
            )
        if sampler is Sampler.FULL and self.sampling_rate != 1:
            raise ConfigError(
                f"A PrivacyEvent with the 'full' sampler must have sampling rate 1; got "
                f"{self.sampling_rate}."
            )
        object.__setattr__(self, "sampler", sampler)

    def to_dp_event(self) -> dp_accounting.DpEvent:
        """The event in ``dp-accounting``'s terms."""
        gaussian: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(self.noise_multiplier)
        if self.sampling_rate < 1:
            gaussian = dp_accounting.PoissonSampledDpEvent(self.sampling_rate, gaussian)
        return dp_accounting.SelfComposedDpEvent(gaussian, self.steps)

    def to_json(self) -> str:
        """A stable JSON text (for the ledger)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PrivacyEvent:
        """Parse :meth:`to_json` output.

        Raises
        ------
        ConfigError
            If the text is not such an event.
        """
        try:
            fields = json.loads(text)
            return cls(
                noise_multiplier=float(fields["noise_multiplier"]),
                sampling_rate=float(fields["sampling_rate"]),
                steps=int(fields["steps"]),
                sampler=Sampler(fields["sampler"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"Not a recorded privacy event: {text[:120]!r} ({exc}).") from exc


_ORDERS = tuple(float(order) for order in rdp.RdpAccountant().orders)
"""The Rényi orders of ``dp-accounting``'s RDP accountant (its defaults)."""


class _DroppedOrderFilter(logging.Filter):
    """dp-accounting logs (through absl) each fractional RDP order it drops as not converging for
    large sampling rates. The order is left out of the minimum, which stays correct; keep these
    lines out of the operator's console, and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in record.getMessage()


_ABSL = logging.getLogger("absl")
if not any(isinstance(f, _DroppedOrderFilter) for f in _ABSL.filters):
    _ABSL.addFilter(_DroppedOrderFilter())


def _accountant(method: Accounting) -> dp_accounting.PrivacyAccountant:
    if method is Accounting.PLD:
        return pld.PLDAccountant()
    return rdp.RdpAccountant()


@functools.lru_cache(maxsize=1024)
def _step_curve(
    noise_multiplier: float, sampling_rate: float, sampler: Sampler
) -> tuple[float, ...]:
    """The RDP curve of one step of an event, at ``dp-accounting``'s default orders (cached)."""
    accountant = rdp.RdpAccountant()
    accountant.compose(PrivacyEvent(noise_multiplier, sampling_rate, 1, sampler).to_dp_event())
    return tuple(float(value) for value in accountant.rdp)


def _rdp_curve(events: Iterable[PrivacyEvent]) -> NDArray[np.float64]:
    """The composed RDP curve: each event's one-step curve times its steps, added (RDP
    composition is additive order by order; Mironov 2017, Proposition 1)."""
    total = np.zeros(len(_ORDERS), dtype=np.float64)  # (orders,)
    for event in events:
        curve = _step_curve(event.noise_multiplier, event.sampling_rate, Sampler(event.sampler))
        total += event.steps * np.asarray(curve)
    return total


def _grouped(events: Iterable[PrivacyEvent]) -> list[PrivacyEvent]:
    """Events of one mechanism merged into one with their steps added (same composition)."""
    steps: dict[tuple[float, float, Sampler], int] = {}
    for event in events:
        key = (event.noise_multiplier, event.sampling_rate, Sampler(event.sampler))
        steps[key] = steps.get(key, 0) + event.steps
    return [PrivacyEvent(z, q, count, sampler) for (z, q, sampler), count in steps.items()]


def _check_delta(delta: float) -> None:
    if not 0 < delta < 1:
        raise ConfigError(f"The 'delta' parameter must be in (0, 1); got {delta!r} instead.")


def epsilon_spent(
    events: Sequence[PrivacyEvent], *, delta: float, method: Accounting = Accounting.RDP
) -> float:
    """ε at ``delta`` of all ``events`` composed (0 for none).

    The events are composed as one history — RDP curves added order by order, or PLDs convolved —
    and converted to ε once; ε values of parts are never added (that would overstate the cost).

    Examples
    --------
    Abadi et al. 2016's MNIST setting: ``q = 0.01``, ``σ = 4``, 10,000 steps, ``δ = 1e-5``.

    >>> event = PrivacyEvent(noise_multiplier=4.0, sampling_rate=0.01, steps=10_000)
    >>> round(epsilon_spent([event], delta=1e-5), 3)
    1.035
    """
    _check_delta(delta)
    if not events:
        return 0.0
    if Accounting(method) is Accounting.PLD:
        accountant = pld.PLDAccountant()
        for event in _grouped(events):
            accountant.compose(event.to_dp_event())
        return float(accountant.get_epsilon(delta))
    epsilon, _ = rdp_privacy_accountant.compute_epsilon(_ORDERS, _rdp_curve(events), delta)
    return float(epsilon)


def classic_rdp_epsilon(events: Sequence[PrivacyEvent], *, delta: float) -> float:
    """ε at ``delta`` by the classic RDP conversion ``min_α RDP(α) + log(1/δ) / (α - 1)``.

    Looser than :func:`epsilon_spent`; for comparison with figures published before 2020
    (Abadi et al.'s 1.26 for their MNIST setting).
    """
    _check_delta(delta)
    if not events:
        return 0.0
    orders = np.asarray(_ORDERS, dtype=np.float64)
    return float(np.min(_rdp_curve(events) + math.log(1 / delta) / (orders - 1)))


def calibrate_noise_multiplier(
    *,
    target_epsilon: float,
    delta: float,
    sampling_rate: float,
    steps: int,
    sampler: Sampler = Sampler.POISSON,
    method: Accounting = Accounting.RDP,
) -> float:
    """The smallest noise multiplier whose ``steps`` runs spend at most ``target_epsilon``.

    Raises
    ------
    ConfigError
        If the target is not a positive finite number or the event is invalid.
    """
    _check_delta(delta)
    if not math.isfinite(target_epsilon) or target_epsilon <= 0:
        raise ConfigError(
            f"The 'target_epsilon' parameter must be a finite number > 0; got {target_epsilon!r}."
        )
    PrivacyEvent(1.0, sampling_rate, steps, sampler)  # validates before the search

    def event(noise_multiplier: float) -> dp_accounting.DpEvent:
        return PrivacyEvent(noise_multiplier, sampling_rate, steps, sampler).to_dp_event()

    noise: float = dp_accounting.calibrate_dp_mechanism(
        lambda: _accountant(Accounting(method)),
        event,
        target_epsilon,
        delta,
        dp_accounting.LowerEndpointAndGuess(1e-3, 1.0),
        tol=1e-4,
    )
    return float(noise)
