"""The whole OpenAPI schema, every app's endpoints together, generates without a warning."""

from __future__ import annotations

from django.core.management import call_command


def test_whole_schema_is_valid_and_warning_free(tmp_path, db):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "openapi: 3" in text and "/api/clients/" in text
