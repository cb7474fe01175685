from django.apps import AppConfig


class ClusterExpiryAppConfig(AppConfig):
    name = "tests.cluster_expiry_app"
    label = "cluster_expiry_app"
    default_auto_field = "django.db.models.AutoField"
