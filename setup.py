"""Packaging of django-memdb."""

from setuptools import find_packages, setup

with open("README.rst", encoding="utf-8") as readme:
    LONG_DESCRIPTION = readme.read()

setup(
    name="django-memdb",
    version="1.2.0",
    description="Django models whose tables live in memory, optionally persisted to the default database.",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/x-rst",
    author="Martin P. Hellwig and the django-memdb contributors",
    license="BSD-2-Clause",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks", "benchmarks.*"]),
    package_data={"django_memdb": ["py.typed"]},
    include_package_data=True,
    install_requires=["Django>=4.2", "django-integrator"],
    extras_require={
        "test": ["pytest>=7", "pytest-django>=4.5", "psycopg[binary]>=3.1", "gunicorn>=21"],
        "mysql": ["mysqlclient>=2.2"],
        "postgresql": ["psycopg[binary]>=3.1"],
        # benchmarks/cache.py: the backends MemDBCache is compared with, and its plot.
        "bench": ["django-redis>=5", "pymemcache>=4", "django-lrucache-backend>=4", "matplotlib>=3.5"],
    },
    keywords=["django", "django-integrator", "in-memory", "sqlite"],
    classifiers=[
        "Development Status :: 5 - Production/Stable",
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    ],
)
