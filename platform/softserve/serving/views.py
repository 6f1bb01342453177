"""Thin views: predictions for a stored prompt, the OpenAI-style completions call, usage counts."""

from __future__ import annotations

import time
import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.datasets.serializers import DatasetVersionSerializer
from softserve.numbers import whole_number
from softserve.prompts.models import TaskPrompt
from softserve.prompts.views import PromptScoped
from softserve.serving import actions, catalog, feedback, traffic
from softserve.serving.models import Feedback, Prediction, Usage
from softserve.serving.serializers import (
    CompletionResponseSerializer,
    CompletionSerializer,
    FeedbackAccuracySerializer,
    FeedbackDatasetSerializer,
    FeedbackRecordedSerializer,
    FeedbackSerializer,
    FeedbackWindowSerializer,
    ModelListSerializer,
    ModelSerializer,
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
        def read() -> actions.ServeCall:
            form = PredictSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            data = form.validated_data
            return actions.ServeCall(
                name,
                data["inputs"],
                alias=data.get("alias"),
                version=data.get("version"),
                routing_key=data.get("routing_key"),
                timeout_ms=data.get("timeout_ms"),
                max_new_tokens=data.get("max_new_tokens"),
            )

        prediction = actions.serve(request.actor, read).prediction
        return Response(prediction.body, headers={"Server-Timing": prediction.server_timing})


class Completions(APIView):
    """`model` is `prompt@alias` or `prompt@version`; each prompt string is one input."""

    actions_by_method = {"POST": "predict"}

    @extend_schema(request=CompletionSerializer, responses={200: CompletionResponseSerializer})
    def post(self, request):
        def read() -> actions.ServeCall:
            form = CompletionSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            data = form.validated_data
            name, _, ref = data["model"].partition("@")
            number = whole_number(ref)
            texts = data["prompt"] if isinstance(data["prompt"], list) else [data["prompt"]]
            return actions.ServeCall(
                name,
                texts,
                alias=None if number else ref or None,
                version=number,
                routing_key=data.get("routing_key"),
                timeout_ms=data.get("timeout_ms"),
                max_new_tokens=data.get("max_tokens"),
                inputs_field="prompt",  # each prompt string is one input
            )

        served = actions.serve(request.actor, read)
        prediction, version = served.prediction, served.route.version
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
                "model": f"{served.route.prompt.name}@{version.number}",
                "choices": choices,
                "usage": {"inputs": len(served.rows), **token_usage(prediction.tokens)},
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


def token_usage(tokens: dict[str, list[int]]) -> dict[str, int]:
    """OpenAI's usage figures: the sums of the serving worker's counts per output (workers/serving/
    batcher.py): prompt tokens of each input as the template formats it, without the soft prompt's
    positions; completion tokens generated (a generation's answer), 0 for classification."""
    prompt_tokens = sum(tokens.get("prompt_tokens", []))
    completion_tokens = sum(tokens.get("completion_tokens", []))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class PredictionFeedback(TenantScoped, APIView):
    """What the right answer was for one output of a prediction (`prediction_id` of its reply)."""

    model = Feedback
    # Sent by the applications that predict, with the key they predict with.
    actions_by_method = {"POST": "predict"}

    @extend_schema(request=FeedbackSerializer, responses={200: FeedbackRecordedSerializer})
    def post(self, request, prediction_id):
        prediction = feedback.prediction_of(request.actor, prediction_id)  # 404 before the body's errors
        form = FeedbackSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        recorded = feedback.record_feedback(
            request.actor, prediction, data["index"], data.get("label"), data.get("target")
        )
        return Response(FeedbackRecordedSerializer(recorded).data)


class PromptFeedback(PromptScoped, APIView):
    """Accuracy from feedback per version of the prompt, over the last `days` days (default 30)."""

    model = Prediction

    @extend_schema(parameters=[FeedbackWindowSerializer], responses={200: FeedbackAccuracySerializer})
    def get(self, request, name):
        prompt = self.prompt()
        form = FeedbackWindowSerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        figures = feedback.accuracy(request.actor, prompt, form.validated_data["days"])
        return Response(FeedbackAccuracySerializer(figures).data)


class PromptFeedbackDataset(PromptScoped, APIView):
    """The prompt's corrected predictions (kept inputs + the feedback's answer) as a new dataset version."""

    model = Prediction
    actions_by_method = {"POST": "upload"}

    @extend_schema(request=FeedbackDatasetSerializer, responses={201: DatasetVersionSerializer})
    def post(self, request, name):
        prompt = self.prompt()
        form = FeedbackDatasetSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = feedback.make_dataset(request.actor, prompt, data.get("dataset"), data.get("since"))
        return Response(DatasetVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class ModelList(APIView):
    """OpenAI's `GET /v1/models`: the team's `prompt@alias` and `prompt@version` names."""

    actions_by_method = {"GET": "list_models"}

    @extend_schema(operation_id="v1_models_list", responses={200: ModelListSerializer})
    def get(self, request):
        return Response({"object": "list", "data": catalog.models(request.actor)})


class ModelDetail(APIView):
    actions_by_method = {"GET": "list_models"}

    @extend_schema(operation_id="v1_models_retrieve", responses={200: ModelSerializer})
    def get(self, request, model_id):
        return Response(catalog.model(request.actor, model_id))
