"""hospital-models: an example plug-in package for the Sovereign AI Framework.

It adds the model ``ward_net`` (entry point group ``sovereign_ai.models``) and the strategy
``equal_sites`` (group ``sovereign_ai.strategies``). The framework finds both through the entry
points declared in ``pyproject.toml``; nothing here needs importing by hand.
"""

from hospital_models.equal_sites import EqualSites, equal_sites
from hospital_models.ward_net import WardNet, ward_net

__all__ = ["EqualSites", "WardNet", "equal_sites", "ward_net"]
