"""Thin views: validate, call an action, serialise. Every query goes through `for_tenant`."""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.tenancy import actions
from softserve.tenancy.models import ApiKey, AuditEvent, Invitation, InvitationStatus, Membership
from softserve.tenancy.permissions import AUDIT_ACTION
from softserve.tenancy.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    InvitationSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    ReceivedInvitationSerializer,
)


class TenantScoped:
    """The queryset of the caller's tenant only; anything else is a 404."""

    model = None
    actions_by_method = {"GET": "read"}

    def get_queryset(self):
        return self.model.objects.for_tenant(self.request.actor.tenant)


class KeyList(TenantScoped, generics.ListCreateAPIView):
    model = ApiKey
    serializer_class = ApiKeySerializer
    actions_by_method = {"GET": "manage_keys", "POST": "manage_keys"}

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request):
        form = ApiKeyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        key, plaintext = actions.create_key(
            request.actor, data["name"], data["scopes"], data.get("role"), data.get("expires_at")
        )
        response = Response({**ApiKeySerializer(key).data, "key": plaintext}, status=status.HTTP_201_CREATED)
        add_never_cache_headers(response)  # the secret is in this body: no cache may keep it
        return response


class KeyDetail(TenantScoped, generics.RetrieveDestroyAPIView):
    model = ApiKey
    serializer_class = ApiKeySerializer
    actions_by_method = {"GET": "manage_keys", "DELETE": "manage_keys"}

    def perform_destroy(self, key: ApiKey) -> None:
        actions.revoke_key(self.request.actor, key)


class MemberList(TenantScoped, generics.ListCreateAPIView):
    model = Membership
    serializer_class = MembershipSerializer
    actions_by_method = {"GET": "read", "POST": "manage_members"}

    def get_queryset(self):
        return super().get_queryset().select_related("user").order_by("created_at")

    @extend_schema(
        request=MembershipCreateSerializer,
        responses={202: InvitationSerializer},
        description="Invites an e-mail address: a pending invitation that the person accepts or declines "
        "after signing in (GET /api/v1/me/invitations). The answer is the same whether or not the address "
        "has an account.",
    )
    def post(self, request):
        form = MembershipCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        invitation = actions.invite(request.actor, form.validated_data["email"], form.validated_data["role"])
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_202_ACCEPTED)


class MemberDetail(TenantScoped, generics.RetrieveUpdateDestroyAPIView):
    model = Membership
    serializer_class = MembershipSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]
    actions_by_method = {"GET": "read", "PATCH": "manage_members", "DELETE": "manage_members"}

    @extend_schema(request=MembershipUpdateSerializer, responses={200: MembershipSerializer})
    def patch(self, request, pk):
        membership = self.get_object()
        form = MembershipUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        membership = actions.change_role(request.actor, membership, form.validated_data["role"])
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, membership: Membership) -> None:
        actions.remove_member(self.request.actor, membership)


class InvitationList(TenantScoped, generics.ListAPIView):
    """The team's pending invitations (POST /api/v1/members makes one)."""

    model = Invitation
    serializer_class = InvitationSerializer
    actions_by_method = {"GET": "manage_members"}

    def get_queryset(self):
        return super().get_queryset().filter(status=InvitationStatus.PENDING).order_by("-created_at")


class InvitationDetail(TenantScoped, generics.RetrieveDestroyAPIView):
    model = Invitation
    serializer_class = InvitationSerializer
    actions_by_method = {"GET": "manage_members", "DELETE": "manage_members"}

    def perform_destroy(self, invitation: Invitation) -> None:
        actions.withdraw_invitation(self.request.actor, invitation)


class SignedInPerson(BasePermission):
    """Endpoints of a person rather than a team: a signed-in session only. An API key acts for a team,
    never for the person who made it, so it cannot answer that person's invitations."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            raise PermissionDenied("Invitations are answered by the invited person, signed in; not by a key.")
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            raise NotAuthenticated("Sign in to see the invitations sent to your e-mail address.")
        return True


class ReceivedInvitationList(generics.ListAPIView):
    """Pending invitations to the signed-in person's e-mail address, from any team."""

    serializer_class = ReceivedInvitationSerializer
    permission_classes = [SignedInPerson]

    def get_queryset(self):
        received = Invitation.objects.for_invitee(self.request.user)
        return received.select_related("tenant").order_by("-created_at")


class ReceivedInvitationAnswer(APIView):
    """Accept (join the team with the offered role) or decline one of them."""

    permission_classes = [SignedInPerson]
    accept = True

    @extend_schema(request=None, responses={200: ReceivedInvitationSerializer})
    def post(self, request, pk):
        invitation = actions.answer_invitation(request.user, pk, accept=self.accept)
        return Response(ReceivedInvitationSerializer(invitation).data)


class AuditList(TenantScoped, generics.ListAPIView):
    model = AuditEvent
    serializer_class = AuditEventSerializer
    actions_by_method = {"GET": AUDIT_ACTION}

    def get_queryset(self):
        return super().get_queryset().select_related("actor_key", "actor_user")
