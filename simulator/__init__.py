"""The fleet simulator: simulated Apple devices that enroll in an MDM portal and answer its
commands over real HTTP(S), as a client. It imports nothing of the portal (an import-linter
contract in pyproject.toml keeps it so): `manage.py mdm_simulate` and `python -m simulator`
are its front ends.

    from simulator import Options, run
    stats = run(Options(url="http://127.0.0.1:8000", devices=5, enrollment=token))
    stats.as_dict(), stats.failed
"""

from .report import summary_text
from .runner import Options, SimulatorError, print_summary, run

__all__ = ["Options", "SimulatorError", "print_summary", "run", "summary_text"]
