"""Settings merged into the project by ``django_integrator.add_application``.

django-integrator copies every public name of this module into the project's
settings, so it holds settings and nothing else.
"""

MEMDB_NAME = "django_memdb"

DATABASES = {
    MEMDB_NAME: {
        "ENGINE": "django_memdb.backend",
        "NAME": "file:django_memdb?mode=memory&cache=shared",
    }
}

DATABASE_ROUTERS = ["django_memdb.dbrouter.MemDB"]

MEMDB_RESTORED = False
MEMDB_PROCESS_ENCODE = "encode"
MEMDB_PROCESS_DECODE = "decode"
