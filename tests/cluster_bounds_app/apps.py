from django.apps import AppConfig


class ClusterBoundsAppConfig(AppConfig):
    name = "tests.cluster_bounds_app"
    label = "cluster_bounds_app"
    default_auto_field = "django.db.models.AutoField"
