"""Differential privacy: mechanisms, accounting, and each data owner's privacy-budget ledger.

Pure math apart from thin state (the ledger, the adaptive clip). The accountants are those of
``dp-accounting`` (RDP and PLD); nothing here re-derives an analysis.
"""

from sovereign_ai.privacy.accounting import (
    Accounting,
    PrivacyEvent,
    Sampler,
    calibrate_noise_multiplier,
    classic_rdp_epsilon,
    epsilon_spent,
)
from sovereign_ai.privacy.adaptive_clipping import AdaptiveClip
from sovereign_ai.privacy.ledger import Budget, LedgerEntry, PrivacyLedger
from sovereign_ai.privacy.mechanisms import (
    clip_l2,
    distributed_noise_std,
    gaussian_noise,
    l2_norm,
    noise_generator,
)

__all__ = [
    "Accounting",
    "AdaptiveClip",
    "Budget",
    "LedgerEntry",
    "PrivacyEvent",
    "PrivacyLedger",
    "Sampler",
    "calibrate_noise_multiplier",
    "classic_rdp_epsilon",
    "clip_l2",
    "distributed_noise_std",
    "epsilon_spent",
    "gaussian_noise",
    "l2_norm",
    "noise_generator",
]
