"""One output layout for a job's run, in simulation and deployment alike.

::

    runs/<job name>/            the default; any folder given with --out
      state/                    durable rounds (SQLite + safetensors); --resume reads it
      metrics.json              every round: metrics, cohort, who answered, failures
      plot.png                  accuracy and loss per round
      model.safetensors         the final global model, once the job finished
      status.json               deployment only: the coordinator's last status

The folder is a workspace, never a startup kit: a kit is a credential and stays as provisioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sovereign_ai.core import Parameters
from sovereign_ai.federation.checkpoint import write_atomically

__all__ = ["RunFolder"]


@dataclass(frozen=True)
class RunFolder:
    """The files of one job's run.

    Parameters
    ----------
    path
        The folder; created on first write.
    """

    path: Path

    @classmethod
    def for_job(cls, job_name: str, *, root: Path = Path("runs")) -> RunFolder:
        """The default folder of a job: ``runs/<job name>``."""
        return cls(root / job_name)

    @property
    def state(self) -> Path:
        """Durable round state (what ``--resume`` continues from)."""
        return self.path / "state"

    @property
    def metrics(self) -> Path:
        """Every round's metrics and participants, as JSON."""
        return self.path / "metrics.json"

    @property
    def plot(self) -> Path:
        """Accuracy and loss per round, as PNG."""
        return self.path / "plot.png"

    @property
    def model(self) -> Path:
        """The final global model, as safetensors."""
        return self.path / "model.safetensors"

    @property
    def status(self) -> Path:
        """A deployed coordinator's last status, as JSON."""
        return self.path / "status.json"

    def write_model(self, parameters: Parameters) -> Path:
        """Write the final model atomically (a reader sees the old file or the whole new one)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.model, parameters.to_bytes())
        return self.model
