"""Thin views: predictions for a stored prompt, the OpenAI-style completions call, usage counts."""

from __future__ import annotations

import time
import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.numbers import whole_number
from softserve.prompts.models import TaskPrompt
from softserve.serving import actions, traffic
from softserve.serving.models import Usage
from softserve.serving.serializers import (
    CompletionResponseSerializer,
    CompletionSerializer,
    PredictResponseSerializer,
    PredictSerializer,
    TrafficQuerySerializer,
    UsageSerializer,
)
from softserve.tenancy.views import TenantScoped


class Predict(APIView):
    actions_by_method = {"POST": "predict"}

    @extend_schema(request=PredictSerializer, responses={200: PredictResponseSerializer})
    def post(self, request, name):
        with actions.admit(request.actor):  # first: a team over its share is refused before any work
            form = PredictSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            data = form.validated_data
            where = actions.route(
                request.actor, name, data.get("alias"), data.get("version"), data.get("routing_key")
            )
            rows = actions.validate_inputs(where.prompt, data["inputs"])
            prediction = actions.predict(
                request.actor,
                where.prompt,
                where.version,
                rows,
                data.get("timeout_ms"),
                data.get("max_new_tokens"),
                alias=where.alias,
                shadow=where.shadow,
            )
        return Response(prediction.body, headers={"Server-Timing": prediction.server_timing})


class Completions(APIView):
    """`model` is `prompt@alias` or `prompt@version`; each prompt string is one input."""

    actions_by_method = {"POST": "predict"}

    @extend_schema(request=CompletionSerializer, responses={200: CompletionResponseSerializer})
    def post(self, request):
        with actions.admit(request.actor):  # first: a team over its share is refused before any work
            return self._complete(request)

    def _complete(self, request):
        form = CompletionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        name, _, ref = data["model"].partition("@")
        number = whole_number(ref)
        where = actions.route(
            request.actor, name, None if number else ref or None, number, data.get("routing_key")
        )
        prompt, version = where.prompt, where.version
        texts = data["prompt"] if isinstance(data["prompt"], list) else [data["prompt"]]
        try:
            rows = actions.validate_inputs(prompt, texts)
        except ValidationError as exc:  # the inputs are called `prompt` here
            raise ValidationError(
                {key.replace("inputs", "prompt", 1): value for key, value in exc.detail.items()}
            ) from None
        prediction = actions.predict(
            request.actor,
            prompt,
            version,
            rows,
            data.get("timeout_ms"),
            data.get("max_tokens"),
            alias=where.alias,
            shadow=where.shadow,
        )
        choices = []
        for i, out in enumerate(prediction.body["outputs"]):
            text = out.get("text", out.get("label", ""))
            choice = {"index": i, "text": text, "finish_reason": out.get("finish_reason", "stop")}
            if "scores" in out:
                choice["scores"] = out["scores"]
            choices.append(choice)
        return Response(
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": f"{prompt.name}@{version.number}",
                "choices": choices,
                "usage": {"inputs": len(rows)},
                # Not OpenAI's: the prediction log's id (for feedback) and the version that answered.
                "softserve": {
                    key: prediction.body[key]
                    for key in ("prediction_id", "version", "alias")
                    if key in prediction.body
                },
            },
            headers={"Server-Timing": prediction.server_timing},
        )


class Traffic(APIView):
    """Live figures per version of one prompt over a window: requests, errors, latency, labels, a shadow's
    agreement, and a per-minute series of each."""

    actions_by_method = {"GET": "read"}

    @extend_schema(parameters=[TrafficQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name):
        form = TrafficQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        prompt = get_object_or_404(TaskPrompt.objects.for_tenant(request.actor.tenant), name=name)
        return Response(traffic.figures(request.actor.tenant, prompt, form.validated_data["window_s"]))


class UsageList(TenantScoped, generics.ListAPIView):
    model = Usage
    serializer_class = UsageSerializer
