import sys

from mona.cli import main

sys.exit(main())
