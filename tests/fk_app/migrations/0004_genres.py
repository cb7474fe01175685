"""An in-memory lookup table seeded by a data migration without hints.

Every model of fk_app is in memory, so the router runs this migration's
operations on the in-memory alias only: the seed runs at the first use of
each fresh in-memory database, before the persistent tables are restored.
"""

import django_memdb.mixins
from django.db import migrations, models

GENRES = ("novel", "essay", "poetry")


def seed_genres(apps, schema_editor):
    Genre = apps.get_model("fk_app", "Genre")
    Genre.objects.using(schema_editor.connection.alias).bulk_create(Genre(name=name) for name in GENRES)


class Migration(migrations.Migration):

    dependencies = [
        ('fk_app', '0003_renamed'),
    ]

    operations = [
        migrations.CreateModel(
            name='Genre',
            fields=[
                ('id', models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=40)),
            ],
            bases=(models.Model, django_memdb.mixins.InMemoryDB),
        ),
        migrations.RunPython(seed_genres, migrations.RunPython.noop),
    ]
