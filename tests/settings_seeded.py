"""The test project with tests.seed_app, whose persistent table a data migration seeds."""

import django_integrator

from tests.settings_base import *  # noqa: F401,F403
from tests.settings_base import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.seed_app"]

django_integrator.add_application("django_memdb")
