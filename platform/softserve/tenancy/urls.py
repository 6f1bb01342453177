from django.urls import path

from softserve.tenancy import views

urlpatterns = [
    path("keys", views.KeyList.as_view(), name="keys"),
    path("keys/<uuid:pk>", views.KeyDetail.as_view(), name="key"),
    path("members", views.MemberList.as_view(), name="members"),
    path("members/<uuid:pk>", views.MemberDetail.as_view(), name="member"),
    path("invitations", views.InvitationList.as_view(), name="invitations"),
    path("invitations/<uuid:pk>", views.InvitationDetail.as_view(), name="invitation"),
    # The signed-in person's own invitations (from any team): accepted or declined here.
    path("me/invitations", views.ReceivedInvitationList.as_view(), name="my-invitations"),
    path(
        "me/invitations/<uuid:pk>/accept",
        views.ReceivedInvitationAnswer.as_view(accept=True),
        name="my-invitation-accept",
    ),
    path(
        "me/invitations/<uuid:pk>/decline",
        views.ReceivedInvitationAnswer.as_view(accept=False),
        name="my-invitation-decline",
    ),
    path("audit", views.AuditList.as_view(), name="audit"),
]
