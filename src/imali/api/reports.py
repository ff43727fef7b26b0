"""What the report endpoints share: the query (filters given blank are refused, dates in order) and
the answer (a JSON page, or with `export=csv` every filtered row as one streamed CSV file,
audited as the screens' exports are). SMS Detail and Reply Detail are built on it."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from imali.api.base import EntityScopedMixin
from imali.messaging import reports


class ReportQuerySerializer(serializers.Serializer):
    """A report's filters. `export=csv`: the whole filtered selection as a streamed CSV file."""

    export = serializers.ChoiceField(choices=[("csv", "CSV")], required=False,
                                     help_text="csv: every filtered row as one streamed CSV file instead of a JSON page")

    def to_internal_value(self, data):
        # DRF reads `?user=` from a query string as "not given"; the schema says a filter, when
        # given, is a value, so a blank one is refused like any other bad value.
        blank = {name: ["This filter may not be blank."] for name in self.fields if data.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": ["The end date is before the start date."]})
        return attrs

    def filters(self):
        """The report's selector filters from the validated query (each report's serializer says which)."""
        raise NotImplementedError(f"{type(self).__name__} must turn its validated query into the report's filters")


class ReportView(EntityScopedMixin, ListAPIView):
    """A report: subclasses name the query serializer, the report's name (its export's audit and
    file name), the CSV header and text columns, and how rows are read."""

    query_serializer_class: type[ReportQuerySerializer]
    report: str
    header: list[str]
    text_columns: frozenset[int]

    def listed(self, filters):
        """The filtered selection, in report order."""
        raise NotImplementedError(f"{type(self).__name__} must provide listed() for its report")

    def page_rows(self, page) -> list:
        """One page of the selection as rows for the row serializer."""
        raise NotImplementedError(f"{type(self).__name__} must provide page_rows() for its report")

    def snapshot(self, filters) -> reports.ExportSnapshot:
        raise NotImplementedError(f"{type(self).__name__} must provide snapshot() for its report")

    def export_rows(self, filters, snapshot: reports.ExportSnapshot) -> Iterator[list]:
        raise NotImplementedError(f"{type(self).__name__} must provide export_rows() for its report")

    def _query(self) -> ReportQuerySerializer:
        query = self.query_serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query

    def get_queryset(self):
        return self.listed(self._query().filters())

    def report_response(self):
        query = self._query()
        filters = query.filters()
        if query.validated_data.get("export") == "csv":
            # The file holds every row, but a bad limit or offset is still the 400 its schema says.
            self.paginator.get_limit(self.request)
            self.paginator.get_offset(self.request)
            return self._csv(filters)
        page = self.paginate_queryset(self.listed(filters))
        return self.get_paginated_response(self.get_serializer(self.page_rows(page), many=True).data)

    def _csv(self, filters) -> StreamingHttpResponse:
        snapshot = self.snapshot(filters)
        reports.report_export_record(actor=self.request.user, entity=self.entity, report=self.report, fmt="csv",
                                     filters=filters.as_record(), rows=snapshot.rows, ip_address=self.ip_address)
        response = StreamingHttpResponse(
            reports.csv_stream(self.header, self.export_rows(filters, snapshot), text_columns=self.text_columns,
                               byte_order_mark=False), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.report}.csv"'
        return response
