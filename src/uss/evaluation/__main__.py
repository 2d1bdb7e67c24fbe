"""python -m uss.evaluation: the evaluation command line (uss.evaluation.cli)."""
import sys

from uss.evaluation.cli import main

sys.exit(main())
