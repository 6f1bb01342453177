"""Thin views: validate, call an action, serialise. Every query goes through `for_tenant`: another
team's hook is a 404 on every endpoint. Owners and admins only (`manage_webhooks`)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.webhooks import actions
from softserve.webhooks.models import Webhook, WebhookDelivery
from softserve.webhooks.serializers import (
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
)

MANAGE = "manage_webhooks"


class TeamHooks:
    actions_by_method = {"GET": MANAGE}

    def get_queryset(self):
        return Webhook.objects.for_tenant(self.request.actor.tenant)

    def hook(self, pk) -> Webhook:
        return get_object_or_404(Webhook.objects.for_tenant(self.request.actor.tenant), pk=pk)


class WebhookList(TeamHooks, generics.ListAPIView):
    serializer_class = WebhookSerializer
    actions_by_method = {"GET": MANAGE, "POST": MANAGE}

    @extend_schema(
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer},
        description="Creates a webhook; the answer carries its signing secret, shown this once (later "
        "reads show a prefix). Deliveries are signed as docs/webhooks.md describes.",
    )
    def post(self, request):
        form = WebhookCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        hook = actions.create_webhook(request.actor, data["url"], data["events"], data["description"])
        response = Response(WebhookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)
        add_never_cache_headers(response)  # the secret is in this body: no cache may keep it
        return response


class WebhookDetail(TeamHooks, generics.RetrieveDestroyAPIView):
    serializer_class = WebhookSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]
    actions_by_method = {"GET": MANAGE, "PATCH": MANAGE, "DELETE": MANAGE}

    @extend_schema(request=WebhookUpdateSerializer, responses={200: WebhookSerializer})
    def patch(self, request, pk):
        hook = self.get_object()
        form = WebhookUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        hook = actions.update_webhook(request.actor, hook, form.validated_data)
        return Response(WebhookSerializer(hook).data)

    def perform_destroy(self, hook: Webhook) -> None:
        actions.delete_webhook(self.request.actor, hook)


class WebhookDeliveries(TeamHooks, generics.ListAPIView):
    """The hook's deliveries, newest first (paginated): each one's status, attempts and last answer."""

    serializer_class = WebhookDeliverySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no request actor
            return WebhookDelivery.objects.none()
        hook = self.hook(self.kwargs["pk"])
        return WebhookDelivery.objects.for_tenant(self.request.actor.tenant).filter(webhook=hook)


class WebhookTest(TeamHooks, APIView):
    actions_by_method = {"POST": MANAGE}

    @extend_schema(
        request=None,
        responses={202: WebhookDeliverySerializer},
        description="Queues a signed `ping` delivery to this hook (a worker sends it); follow it in the "
        "hook's deliveries.",
    )
    def post(self, request, pk):
        delivery = actions.send_test(request.actor, self.hook(pk))
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
