from django.urls import path

from softserve.datasets import views

urlpatterns = [
    path("datasets", views.DatasetList.as_view(), name="datasets"),
    path("datasets/<uuid:pk>", views.DatasetDetail.as_view(), name="dataset"),
    path("datasets/<uuid:pk>/versions/<int:number>", views.VersionDetail.as_view(), name="dataset-version"),
    path(
        "datasets/<uuid:pk>/versions/<int:number>/preview",
        views.VersionPreview.as_view(),
        name="dataset-version-preview",
    ),
]
