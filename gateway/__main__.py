"""`python -m gateway` is the `simfarm` command."""

import sys

from gateway.cli import main

sys.exit(main())
