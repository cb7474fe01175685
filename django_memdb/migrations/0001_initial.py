# As shipped by django-memdb 0.0.6, so that its databases migrate forward.
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PersistentStorage",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("application", models.CharField(max_length=63)),
                ("modelname", models.CharField(max_length=63)),
                ("inserted", models.DateTimeField(auto_now_add=True)),
                ("codec", models.CharField(max_length=128)),
                ("data", models.BinaryField()),
            ],
        ),
    ]
