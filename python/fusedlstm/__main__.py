"""`python -m fusedlstm ...` is the `fusedlstm` command."""

import sys

from .cli import main

sys.exit(main())
