"""`python -m aiaudit.pipeline.cli …`: the same as the `aiaudit` command."""

import sys

from aiaudit.pipeline.cli import main

sys.exit(main())
