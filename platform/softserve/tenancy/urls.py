from django.urls import path

from softserve.tenancy import views

urlpatterns = [
    path("keys", views.KeyList.as_view(), name="keys"),
    path("keys/<uuid:pk>", views.KeyDetail.as_view(), name="key"),
    path("members", views.MemberList.as_view(), name="members"),
    path("members/<uuid:pk>", views.MemberDetail.as_view(), name="member"),
    path("audit", views.AuditList.as_view(), name="audit"),
]
