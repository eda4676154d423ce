"""``python -m forge_course.serving MODEL --name NAME``: the service without the course CLI."""

import sys

from forge_course.serving.cli import main

sys.exit(main())
