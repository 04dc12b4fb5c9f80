"""Shared test settings."""

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# No example database, and Hypothesis' other files in the temp dir: the
# source tree stays clean, and the guest's root file system is read-only.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "pysweep-hypothesis")
settings.register_profile("pysweep", database=None, deadline=None)
settings.load_profile("pysweep")
