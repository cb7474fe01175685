"""Test project settings: django-memdb installed with django-integrator, as 0.0.6 documented."""

import django_integrator

from tests.settings_base import *  # noqa: F401,F403

django_integrator.add_application("django_memdb")
