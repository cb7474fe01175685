"""Data migrations of an app with both kinds of models: hinted, and not.

Each writes through ``schema_editor.connection.alias``, where the router runs
it: a seed on the wrong database would fail there for want of the table.
"""

from django.db import migrations


def seed_colours(apps, schema_editor):
    Colour = apps.get_model("mixed_app", "Colour")
    Colour.objects.using(schema_editor.connection.alias).bulk_create(
        Colour(name=name) for name in ("red", "green", "blue")
    )


def seed_palette(apps, schema_editor):
    Palette = apps.get_model("mixed_app", "Palette")
    alias = schema_editor.connection.alias
    Palette.objects.using(alias).create(name=f"hinted palette seed on {alias}")


def unhinted(apps, schema_editor):
    Palette = apps.get_model("mixed_app", "Palette")
    alias = schema_editor.connection.alias
    Palette.objects.using(alias).create(name=f"unhinted seed on {alias}")


class Migration(migrations.Migration):

    dependencies = [
        ('mixed_app', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(seed_colours, migrations.RunPython.noop, hints={"model_name": "colour"}),
        migrations.RunPython(seed_palette, migrations.RunPython.noop, hints={"model_name": "palette"}),
        migrations.RunPython(unhinted, migrations.RunPython.noop),
    ]
