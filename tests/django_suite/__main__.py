from __future__ import annotations

import sys

from tests.django_suite.runner import main

sys.exit(main())
