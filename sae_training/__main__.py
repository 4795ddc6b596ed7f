"""``python -m sae_training``: the same command line as ``mona-sae``."""

import sys

from sae_training.cli import main

sys.exit(main())
