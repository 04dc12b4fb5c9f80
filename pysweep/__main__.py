"""``python3 -m pysweep``: the ``pysweep`` command (see :mod:`pysweep.cli`)."""

from pysweep.cli import main

raise SystemExit(main())
