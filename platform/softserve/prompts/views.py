"""Thin views over the registry; prompts are addressed by name within the caller's tenant."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.prompts import actions, compare, downloads, gates
from softserve.prompts.history import alias_moves
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.prompts.serializers import (
    AliasMoveSerializer,
    AliasSerializer,
    CompareQuerySerializer,
    GateQuerySerializer,
    PromptSerializer,
    PromptUpdateSerializer,
    PromptVersionSerializer,
    alias_change,
    alias_targets,
)
from softserve.tenancy.views import TenantScoped


class WithAliases(TenantScoped):
    def get_queryset(self):
        # One query for every listed prompt's aliases and their versions, not one per prompt.
        aliases = Prefetch(
            "aliases", queryset=Alias.objects.select_related("version").defer("version__inspection")
        )
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
    # PATCH: the prompt's settings (kept inputs and their retention), by those who create and train prompts;
    # pinning the evaluation set decides what alias gates compare on, so it needs manage_aliases as well.
    actions_by_method = {"GET": "read", "PATCH": "train", "DELETE": "manage_aliases"}

    @extend_schema(request=PromptUpdateSerializer, responses={200: PromptSerializer})
    def patch(self, request, name: str):
        prompt = self.get_object()
        form = PromptUpdateSerializer(data=request.data, context={"prompt": prompt})
        form.is_valid(raise_exception=True)
        if "eval_dataset_version" in form.validated_data and not request.actor.may("manage_aliases"):
            raise PermissionDenied(
                "Pinning the evaluation set is for those who move aliases (admins, owners)."
            )
        actions.change_prompt(request.actor, prompt, **form.validated_data)
        return Response(PromptSerializer(self.get_object()).data)

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
        # The nearest-token JSON has its own endpoint: lists do not carry it.
        return (
            super().get_queryset().filter(prompt=self.prompt()).select_related("prompt").defer("inspection")
        )


class VersionDetail(PromptScoped, generics.RetrieveAPIView):
    model = PromptVersion
    serializer_class = PromptVersionSerializer

    def get_object(self) -> PromptVersion:
        return downloads.tenant_version(
            self.request.actor.tenant, self.kwargs["name"], self.kwargs["number"]
        )[1]

    def get_serializer_context(self) -> dict:
        # One version: its evaluation with the per-row predictions and gold labels (gates pair on them).
        return {**super().get_serializer_context(), "full_evaluation": True}


class VersionEvaluate(PromptScoped, APIView):
    """Re-score a ready version on the prompt's evaluation set through the serving pool (202: queued;
    the version's `parity` is pending until it is done)."""

    model = PromptVersion
    actions_by_method = {"POST": "train"}

    @extend_schema(request=None, responses={202: PromptVersionSerializer})
    def post(self, request, name: str, number: int):
        prompt, version = downloads.tenant_version(request.actor.tenant, name, number)
        version = actions.evaluate_version(request.actor, prompt, version)
        return Response(
            PromptVersionSerializer(version, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class VersionArtifact(PromptScoped, APIView):
    """The version's artifact as a file: `softserve` (the .safetensors the platform serves) or `peft`
    (a zip of adapter_config.json and adapter_model.safetensors for PEFT). 404 with the reason where
    the version has none in that format (PEFT of a prefix-tuning version, an unfinished version)."""

    model = PromptVersion

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, name: str, number: int, fmt: str):
        chosen = downloads.FORMATS.get(fmt)
        if chosen is None:
            raise NotFound(f"No format {settings.LIMITS.echo(fmt)}; formats: {sorted(downloads.FORMATS)}.")
        prompt, version = downloads.tenant_version(request.actor.tenant, name, number)
        return downloads.file_response(prompt, version, chosen)


class VersionTokens(PromptScoped, APIView):
    """Per position of the version's prompt (its first member, for an ensemble): the vector's norm and
    the nearest vocabulary tokens by cosine, as the tuning worker computed them. `state` says whether
    it is computed, does not apply (prefix tuning) or was not computed (older versions)."""

    model = PromptVersion

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str, number: int):
        _, version = downloads.tenant_version(request.actor.tenant, name, number)
        return Response(
            {"version": version.number, "method": version.method, **downloads.inspection(version)}
        )


class AliasScoped(PromptScoped):
    model = Alias

    def _alias(self) -> Alias:
        return get_object_or_404(
            self.get_queryset().select_related("version", "shadow"),
            prompt=self.prompt(),
            name=self.kwargs["alias"],
        )


class AliasDetail(AliasScoped, APIView):
    """An alias: GET shows its routing, policy, protection and move history; PUT moves it (see the body's
    fields), checked by its gate (409 `gate_failed` with the figures under `error.gate`); DELETE removes
    it. Unprotected aliases move with the member role, protected ones only with owner or admin."""

    serializer_class = AliasSerializer
    actions_by_method = {"GET": "read", "PUT": "move_aliases", "DELETE": "move_aliases"}

    @extend_schema(responses={200: AliasSerializer})
    def get(self, request, name, alias):
        current = self._alias()
        history = [
            {
                "at": move.at,
                "from": move.before,
                "to": move.version,
                "split": move.split,
                "shadow": move.shadow,
                "override_reason": move.override_reason,
            }
            for move in alias_moves(request.actor.tenant, alias=current)
        ]
        return Response({**AliasSerializer(current).data, "history": history})

    @extend_schema(request=AliasMoveSerializer, responses={200: AliasSerializer})
    def put(self, request, name, alias):
        form = AliasMoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        prompt = self.prompt()
        change = alias_change(request.actor.tenant, prompt, alias, form.validated_data)
        moved = actions.move_alias(request.actor, prompt, alias, change)
        return Response(AliasSerializer(moved).data)

    def delete(self, request, name, alias):
        actions.delete_alias(request.actor, self._alias())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AliasGate(AliasScoped, APIView):
    """The gate's verdict on moving the alias wholly to `version`, without moving it: the candidate's
    and the current primary's scores on the evaluation set, the regression, McNemar's exact test (b: rows
    only the current version gets right, c: only the candidate) and the reasons it would refuse.
    `gated`: whether the move would be checked at all; `passed`: whether it would go through."""

    actions_by_method = {"GET": "read"}

    @extend_schema(parameters=[GateQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name, alias):
        current = self._alias()
        query = GateQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        number = query.validated_data["version"]
        candidate = alias_targets(request.actor.tenant, current.prompt, alias, {"version": [number]})[number]
        verdict = actions.version_verdict(current.prompt, current, candidate)
        return Response({"alias": current.name, **verdict.as_dict()})


class VersionCompare(PromptScoped, APIView):
    """Versions `a` and `b` on the prompt's evaluation set: their scores, per-label F1 side by side,
    McNemar's exact test (b: rows only `a` gets right, c: only `b`) and the first rows where their
    outputs differ (index in the set, the row's input, gold, each one's output)."""

    model = PromptVersion

    @extend_schema(parameters=[CompareQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name):
        prompt = self.prompt()
        query = CompareQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        a, b = query.validated_data["a"], query.validated_data["b"]
        found = gates.versions_by_number(request.actor.tenant, prompt, [a, b])
        missing = {
            f: [f"{prompt.name} has no version {n}."] for f, n in (("a", a), ("b", b)) if n not in found
        }
        if missing:
            raise ValidationError(missing)
        return Response(compare.compare(request.actor.tenant, prompt, found[a], found[b]))
