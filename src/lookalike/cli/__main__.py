"""`python -m lookalike.cli` (the tests run the command line this way, with the interpreter they run on)."""

import sys

from lookalike.cli.main import main

sys.exit(main())
