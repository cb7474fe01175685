from django.urls import path

from tests.cluster_app import views

urlpatterns = [path("items/", views.entries)]
