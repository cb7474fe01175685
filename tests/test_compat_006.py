"""The test suite of django-memdb 0.0.6, kept as it was written (imports aside)."""

import json
import zlib

from django.test import TestCase

from django_memdb import settings, signals
from django_memdb.models import PersistentStorage
from django_memdb.tools import restore
from tests.models import TestModelPersistent, TestModelWithMixin


def extra_process(arguments):
    if arguments["process"] == settings.MEMDB_PROCESS_ENCODE:
        data = arguments["data"]
        data = json.dumps(data)
        data = data.encode("utf-8")
        data = zlib.compress(data)
        arguments["data"] = data
    elif arguments["process"] == settings.MEMDB_PROCESS_DECODE:
        data = arguments["data"]
        data = zlib.decompress(data)
        data = data.decode("utf-8")
        data = json.loads(data)
        arguments["data"] = data


def hook(sender, **kwargs):
    kwargs["kwargs"]["processors"].append(extra_process)


class MainTest(TestCase):
    databases = {"default", "django_memdb"}

    def tearDown(self):
        signals.store_save.disconnect(hook)
        signals.store_load.disconnect(hook)

    def test_01_smoke(self):
        TestModelWithMixin.objects.create(text="some text")
        query = TestModelWithMixin.objects.all()
        self.assertEqual(query.count(), 1)
        query.delete()
        self.assertEqual(query.count(), 0)

    def test_02_bulk_create(self):
        count = TestModelPersistent.objects.all().count()
        TestModelPersistent.objects.bulk_create([TestModelPersistent(text="yeah!")])
        query = TestModelPersistent.objects.all()
        self.assertEqual(query.count(), count + 1)

    def test_03_create(self):
        count = TestModelPersistent.objects.all().count()
        instance = TestModelPersistent()
        instance.text = "yeah!"
        instance.save()
        query = TestModelPersistent.objects.all()
        self.assertEqual(query.count(), count + 1)

    def test_04_bulk_delete(self):
        self.test_02_bulk_create()
        self.test_02_bulk_create()
        self.test_02_bulk_create()
        query = PersistentStorage.objects.all()
        self.assertEqual(query.count(), 1)
        TestModelPersistent.objects.all().delete()
        query = PersistentStorage.objects.all()
        self.assertEqual(query.count(), 0)

    def test_06_restore(self):
        signals.store_save.connect(hook)
        signals.store_load.connect(hook)
        self.test_02_bulk_create()
        got = PersistentStorage.objects.all()
        query = list(got)

        got.delete()
        self.assertFalse(PersistentStorage.objects.all().exists())
        settings.MEMDB_RESTORED = False
        restore.restore(query)
        self.assertTrue(PersistentStorage.objects.all().exists())
        self.assertTrue(settings.MEMDB_RESTORED)


class IssueTest(TestCase):
    databases = {"default", "django_memdb"}

    def test_1(self):
        TestModelPersistent.objects.create(text="yeah")
        query = [PersistentStorage.objects.get()]
        PersistentStorage.objects.get().delete()
        settings.MEMDB_RESTORED = False
        restore.restore(query)
        self.assertTrue(PersistentStorage.objects.all().exists())
        self.assertTrue(settings.MEMDB_RESTORED)
