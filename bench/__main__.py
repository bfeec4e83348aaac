"""`python -m bench`: see bench/run.py for usage."""

import sys

from bench.run import main

sys.exit(main())
