"""Thin views over jobs: create (validated, enqueued after commit), read, cancel, retry."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.jobs import actions
from softserve.jobs.models import Job
from softserve.jobs.serializers import JobCreateSerializer, JobSerializer
from softserve.tenancy.views import TenantScoped


class JobList(TenantScoped, generics.ListAPIView):
    model = Job
    serializer_class = JobSerializer
    actions_by_method = {"GET": "read", "POST": "train"}

    def get_queryset(self):
        # The version's nearest-token JSON is never part of a job: not read for a list of them.
        return (
            super()
            .get_queryset()
            .select_related("prompt_version__prompt")
            .defer("prompt_version__inspection")
        )

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def post(self, request):
        form = JobCreateSerializer(data=request.data, context={"tenant": request.actor.tenant})
        form.is_valid(raise_exception=True)
        data = form.validated_data
        job = actions.create_job(
            request.actor, data["kind"], data["prompt_obj"], form.spec(), data["dataset_obj"], data["target"]
        )
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetail(TenantScoped, generics.RetrieveAPIView):
    model = Job
    serializer_class = JobSerializer


class JobTransition(TenantScoped, APIView):
    model = Job
    actions_by_method = {"POST": "train"}
    transition = None

    @extend_schema(request=None, responses={200: JobSerializer})
    def post(self, request, pk):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        return Response(JobSerializer(self.transition(request.actor, job)).data)


class JobCancel(JobTransition):
    transition = staticmethod(actions.cancel_job)


class JobRetry(JobTransition):
    transition = staticmethod(actions.retry_job)
