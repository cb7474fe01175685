from django.urls import path

from tests import session_view
from tests.cluster_app import views

urlpatterns = [
    path("items/", views.entries),
    path("both/", views.create_both),
    path("rolled-back-default/", views.inside_rolled_back_default),
    path("session/", session_view.session),
]
