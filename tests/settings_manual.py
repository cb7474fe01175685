"""Test project settings: django-memdb installed by hand."""

from tests.settings_base import *  # noqa: F401,F403
from tests.settings_base import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_memdb"]
DATABASES = {
    **DATABASES,
    "django_memdb": {
        "ENGINE": "django_memdb.backend",
        "NAME": "file:django_memdb?mode=memory&cache=shared",
    },
}
DATABASE_ROUTERS = ["django_memdb.dbrouter.MemDB"]
