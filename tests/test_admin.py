"""The read-only admin of stored snapshots and journal, and its compact and verify actions."""

from __future__ import annotations

import json

from django.contrib.auth.models import Permission, User
from django.contrib.messages import constants
from django.test import TestCase
from django.urls import reverse

from django_memdb.models import PersistentJournal, PersistentStorage
from tests.models import Other, Persistent
from tests.storage_view import assert_persisted

CHANGELIST = reverse("admin:django_memdb_persistentstorage_changelist")


class StoredAdminTests(TestCase):
    databases = {"default", "django_memdb"}

    @classmethod
    def setUpTestData(cls) -> None:
        cls.superuser = User.objects.create_superuser("admin", "admin@example.com", "pw")

    def setUp(self) -> None:
        self.client.force_login(self.superuser)
        self.pks = [Persistent.objects.create(text=text).pk for text in ("a", "b", "c")]
        Other.objects.create(number=1)
        self.snapshot = PersistentStorage.objects.get(modelname="Persistent")

    def act(self, action: str, *rows: PersistentStorage) -> list[tuple[int, str]]:
        response = self.client.post(
            CHANGELIST, {"action": action, "_selected_action": [row.pk for row in rows]}, follow=True
        )
        self.assertEqual(response.status_code, 200)
        return [(message.level, message.message) for message in response.context["messages"]]

    def test_changelist_shows_tables_without_loading_blobs(self) -> None:
        response = self.client.get(CHANGELIST)
        self.assertEqual(response.status_code, 200)
        content = response.content.decode()
        for column in ("Rows", "Size", "Codec", "Age", "Journal entries", "Inserted"):
            self.assertIn(f">{column}<", content)
        self.assertIn("tests.Persistent", content)
        self.assertIn("tests.Other", content)
        listed = {str(obj): obj for obj in response.context["cl"].result_list}
        row = listed["tests.Persistent"]
        self.assertEqual(row.get_deferred_fields(), {"data"})
        self.assertEqual((row.rows, row.data_size, row.journal_entries), (1, len(bytes(self.snapshot.data)), 2))
        self.assertEqual(listed["tests.Other"].journal_entries, 0)
        actions = [choice[0] for choice in response.context["action_form"].fields["action"].choices]
        self.assertIn("compact_tables", actions)
        self.assertIn("verify_tables", actions)

    def test_change_view_is_read_only(self) -> None:
        url = reverse("admin:django_memdb_persistentstorage_change", args=[self.snapshot.pk])
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        content = response.content.decode()
        self.assertIn("tests", content)
        self.assertIn("Journal entries", content)
        self.assertNotIn('name="codec"', content)
        self.assertNotIn('name="data"', content)
        self.assertNotIn('name="_save"', content)
        response = self.client.post(url, {"codec": "x"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(PersistentStorage.objects.get(pk=self.snapshot.pk).codec, "")
        add = self.client.get(reverse("admin:django_memdb_persistentstorage_add"))
        self.assertEqual(add.status_code, 403)

    def test_journal_views(self) -> None:
        response = self.client.get(reverse("admin:django_memdb_persistentjournal_changelist"))
        self.assertEqual(response.status_code, 200)
        entry = PersistentJournal.objects.order_by("id").first()
        assert entry is not None
        self.assertIn(f"tests.Persistent #{entry.pk}", response.content.decode())
        change = self.client.get(reverse("admin:django_memdb_persistentjournal_change", args=[entry.pk]))
        self.assertEqual(change.status_code, 200)
        self.assertNotIn('name="_save"', change.content.decode())

    def test_compact_action(self) -> None:
        other = PersistentStorage.objects.get(modelname="Other")
        Other.objects.create(number=2)
        messages = self.act("compact_tables", self.snapshot)
        self.assertEqual(len(messages), 1)
        level, text = messages[0]
        self.assertEqual(level, constants.SUCCESS)
        self.assertTrue(text.startswith("tests.Persistent: snapshot of 3 rows ("), text)
        self.assertFalse(PersistentJournal.objects.filter(modelname="Persistent").exists())
        self.assertEqual(PersistentJournal.objects.filter(modelname="Other").count(), 1)  # not selected
        self.assertEqual(PersistentStorage.objects.get(modelname="Persistent").rows, 3)
        self.act("compact_tables", other)
        self.assertFalse(PersistentJournal.objects.exists())
        assert_persisted(Persistent, Other)

    def test_verify_action(self) -> None:
        other = PersistentStorage.objects.get(modelname="Other")
        messages = self.act("verify_tables", self.snapshot, other)
        self.assertEqual(
            messages,
            [
                (constants.SUCCESS, "tests.Other: 1 row, memory matches storage"),
                (constants.SUCCESS, "tests.Persistent: 3 rows, memory matches storage"),
            ],
        )
        first = self.pks[0]
        self.snapshot.data = json.dumps(
            [{"model": "tests.persistent", "pk": first, "fields": {"text": "changed"}}]
        ).encode()
        self.snapshot.save(update_fields=["data"])
        messages = self.act("verify_tables", self.snapshot)
        self.assertEqual(len(messages), 1)
        self.assertEqual(messages[0][0], constants.ERROR)
        self.assertIn(
            f"tests.Persistent: DIFFERS (3 in memory, 3 stored): 1 row different (pk {first} [text])",
            messages[0][1],
        )

    def test_actions_warn_about_rows_of_no_model(self) -> None:
        orphan = PersistentStorage.objects.create(application="gone", modelname="Missing", codec="", data=b"[]")
        for action in ("verify_tables", "compact_tables"):
            messages = self.act(action, orphan)
            self.assertEqual(len(messages), 1)
            self.assertEqual(messages[0][0], constants.WARNING)
            self.assertIn("Stored rows of gone.Missing belong to no persistent model", messages[0][1])
        self.assertTrue(PersistentStorage.objects.filter(pk=orphan.pk).exists())

    def test_compact_needs_delete_permission(self) -> None:
        viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_persistentstorage"))
        self.client.force_login(viewer)
        response = self.client.get(CHANGELIST)
        self.assertEqual(response.status_code, 200)
        actions = [choice[0] for choice in response.context["action_form"].fields["action"].choices]
        self.assertIn("verify_tables", actions)
        self.assertNotIn("compact_tables", actions)
        self.client.post(CHANGELIST, {"action": "compact_tables", "_selected_action": [self.snapshot.pk]})
        self.assertEqual(PersistentJournal.objects.filter(modelname="Persistent").count(), 2)
