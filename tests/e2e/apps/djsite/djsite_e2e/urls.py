from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello, name="hello"),
    path("form/", views.form, name="form"),
    path("page/<str:name>/", views.page, name="page"),
]
