"""Test project settings: django-memdb installed with django-integrator, as 0.0.6 documented."""

from tests.settings_base import *  # noqa: F401,F403

import django_integrator  # noqa: E402

django_integrator.add_application("django_memdb")
