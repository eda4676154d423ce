"""``python -m forge_course.pretrained [NAME ...]``: train the shipped models again."""

import sys

from forge_course.pretrained import main

sys.exit(main())
