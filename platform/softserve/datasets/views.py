"""Thin views over datasets; every lookup goes through the caller's tenant (else 404)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from softserve.datasets import actions
from softserve.datasets.models import Dataset, DatasetVersion
from softserve.datasets.serializers import DatasetSerializer, DatasetVersionSerializer, UploadSerializer
from softserve.tenancy.views import TenantScoped


class DatasetList(TenantScoped, generics.ListAPIView):
    model = Dataset
    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser]
    actions_by_method = {"GET": "read", "POST": "upload"}

    def get_queryset(self):
        return super().get_queryset().prefetch_related("versions")

    @extend_schema(
        request={"multipart/form-data": UploadSerializer}, responses={201: DatasetVersionSerializer}
    )
    def post(self, request):
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        spec = form.upload_spec()
        version = actions.upload(request.actor, data["name"], upload.file, upload.name, spec)
        return Response(DatasetVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class DatasetDetail(TenantScoped, generics.RetrieveDestroyAPIView):
    model = Dataset
    serializer_class = DatasetSerializer
    actions_by_method = {"GET": "read", "DELETE": "upload"}

    def perform_destroy(self, dataset: Dataset) -> None:
        actions.delete_dataset(self.request.actor, dataset)


class VersionDetail(TenantScoped, generics.RetrieveAPIView):
    model = DatasetVersion
    serializer_class = DatasetVersionSerializer

    def get_object(self) -> DatasetVersion:
        return get_object_or_404(
            self.get_queryset().select_related("dataset"),
            dataset_id=self.kwargs["pk"],
            number=self.kwargs["number"],
        )


class VersionPreview(TenantScoped, APIView):
    model = DatasetVersion

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="rows, 1-100 (default 20)")],
        responses={200: dict},
    )
    def get(self, request, pk, number):
        version = get_object_or_404(self.get_queryset(), dataset_id=pk, number=number)
        try:
            limit = min(100, max(1, int(request.query_params.get("limit", 20))))
        except ValueError:
            raise ValidationError({"limit": ["A whole number from 1 to 100."]}) from None
        return Response(
            {
                "rows": actions.preview(version, limit),
                "row_count": version.row_count,
                "label_counts": version.label_counts,
                "split_counts": version.split_counts,
            }
        )
