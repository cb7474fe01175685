import django_memdb.mixins
from django.db import migrations, models


def seed_grades(apps, schema_editor):
    Grade = apps.get_model("seed_app", "Grade")
    Grade.objects.using(schema_editor.connection.alias).bulk_create(Grade(name=name) for name in ("a", "b", "c"))


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name='Grade',
            fields=[
                ('id', models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=40)),
            ],
            bases=(models.Model, django_memdb.mixins.PeristentInMemoryDB),
        ),
        migrations.RunPython(seed_grades, migrations.RunPython.noop),
    ]
