"""Thin views over the registry; prompts are addressed by name within the caller's tenant."""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.prompts import actions
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.prompts.serializers import (
    AliasMoveSerializer,
    AliasSerializer,
    PromptSerializer,
    PromptVersionSerializer,
    alias_target,
)
from softserve.tenancy.models import AuditEvent
from softserve.tenancy.views import TenantScoped


class WithAliases(TenantScoped):
    def get_queryset(self):
        # One query for every listed prompt's aliases and their versions, not one per prompt.
        aliases = Prefetch("aliases", queryset=Alias.objects.select_related("version"))
        return super().get_queryset().prefetch_related(aliases)


class PromptList(WithAliases, generics.ListCreateAPIView):
    model = TaskPrompt
    serializer_class = PromptSerializer
    actions_by_method = {"GET": "read", "POST": "train"}

    def perform_create(self, serializer) -> None:
        serializer.instance = actions.create_prompt(self.request.actor, **serializer.validated_data)


class PromptDetail(WithAliases, generics.RetrieveDestroyAPIView):
    model = TaskPrompt
    serializer_class = PromptSerializer
    lookup_field = "name"
    actions_by_method = {"GET": "read", "DELETE": "manage_aliases"}

    def perform_destroy(self, prompt: TaskPrompt) -> None:
        actions.delete_prompt(self.request.actor, prompt)


class PromptScoped(TenantScoped):
    def prompt(self) -> TaskPrompt:
        return get_object_or_404(
            TaskPrompt.objects.for_tenant(self.request.actor.tenant), name=self.kwargs["name"]
        )


class VersionList(PromptScoped, generics.ListAPIView):
    model = PromptVersion
    serializer_class = PromptVersionSerializer

    def get_queryset(self):
        return super().get_queryset().filter(prompt=self.prompt())


class AliasDetail(PromptScoped, APIView):
    model = Alias
    serializer_class = AliasSerializer
    actions_by_method = {"GET": "read", "PUT": "manage_aliases", "DELETE": "manage_aliases"}

    def _alias(self) -> Alias:
        return get_object_or_404(
            self.get_queryset().select_related("version"), prompt=self.prompt(), name=self.kwargs["alias"]
        )

    @extend_schema(responses={200: AliasSerializer})
    def get(self, request, name, alias):
        current = self._alias()
        moves = (
            AuditEvent.objects.for_tenant(request.actor.tenant)
            .filter(action="alias.move", target_id=str(current.pk))
            .order_by("created_at")
        )
        history = [
            {"at": e.created_at, "from": (e.before or {}).get("version"), "to": e.after["version"]}
            for e in moves
        ]
        return Response({**AliasSerializer(current).data, "history": history})

    @extend_schema(request=AliasMoveSerializer, responses={200: AliasSerializer})
    def put(self, request, name, alias):
        form = AliasMoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        prompt = self.prompt()
        version = alias_target(request.actor.tenant, prompt, alias, form.validated_data["version"])
        moved = actions.move_alias(request.actor, prompt, alias, version)
        return Response(AliasSerializer(moved).data)

    def delete(self, request, name, alias):
        actions.delete_alias(request.actor, self._alias())
        return Response(status=status.HTTP_204_NO_CONTENT)
