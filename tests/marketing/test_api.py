"""Client marketing over the API: run (background, then its status), rows paged and sorted, export,
preview and send; bad filters name the field; rights and another entity's data set."""

from __future__ import annotations

import csv
import io

import pytest

from imali.marketing.models import DataSet
from imali.marketing.services import custom_message_save
from imali.messaging.models import OutboxMessage
from imali.tenancy.rights import Right
from tests.api.conftest import signed_in  # noqa: F401

pytestmark = pytest.mark.django_db

RIGHTS = [Right.CLIENT_MARKETING, Right.MAXSMS_MESSAGE_SETUP]


@pytest.fixture
def api(entity, signed_in):  # noqa: F811
    return signed_in(entity, RIGHTS)


def test_run_status_rows_export_and_send(entity, api, book, funded, no_consent_needed, immediate_huey,
                                         django_capture_on_commit_callbacks):
    for _ in range(3):
        book.loan()
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/marketing/datasets/", {"months_outstanding": "all", "calculate_settlement": True},
                           format="json")
    assert created.status_code == 202, created.content
    dataset_id = created.json()["id"]
    status = api.get(f"/api/marketing/datasets/{dataset_id}/").json()
    assert (status["state"], status["row_count"], status["percent"]) == ("done", 3, 100)

    page = api.get(f"/api/marketing/datasets/{dataset_id}/rows/?limit=2&sort=client_number&dir=desc").json()
    assert page["count"] == 3 and len(page["results"]) == 2
    numbers = [r["client_number"] for r in page["results"]]
    assert numbers == sorted(numbers, reverse=True)
    assert page["results"][0]["outstanding"] == "2715.00" and page["results"][0]["settlement"] is not None

    export = api.get(f"/api/marketing/datasets/{dataset_id}/export/?file_format=csv")
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 4 and rows[0][1] == "Client number"

    message = custom_message_save(actor=api.user, entity=entity, channel="sms", name="Offer",
                                  text="Hello {^Client Name^} a top-up awaits you")
    preview = api.post(f"/api/marketing/datasets/{dataset_id}/send/preview/", {"message": message.pk}, format="json")
    assert preview.status_code == 200 and preview.json()["recipients"] == 3
    sent = api.post(f"/api/marketing/datasets/{dataset_id}/send/", {"message": message.pk, "idempotency_key": "a1"},
                    format="json")
    assert sent.status_code == 201 and sent.json()["queued"] == 3
    again = api.post(f"/api/marketing/datasets/{dataset_id}/send/", {"message": message.pk, "idempotency_key": "a1"},
                     format="json")
    assert again.status_code == 200 and OutboxMessage.objects.count() == 3
    assert [m["name"] for m in api.get("/api/marketing/messages/").json()["results"]] == ["Offer"]


def test_bad_filters_are_400s_naming_the_field(entity, api):
    response = api.post("/api/marketing/datasets/", {"number_from": 9, "number_to": 3, "months_outstanding": "7"},
                        format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"months_outstanding"}
    response = api.post("/api/marketing/datasets/", {"number_from": 9, "number_to": 3}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"number_to"}
    assert api.get("/api/marketing/datasets/1/rows/?sort=colour").status_code in (400, 404)
    assert not DataSet.objects.exists()


def test_rights_and_another_entitys_data_set(entity, other_entity, signed_in, no_consent_needed):  # noqa: F811
    theirs = signed_in(other_entity, RIGHTS)
    made = theirs.post("/api/marketing/datasets/", {}, format="json").json()
    mine = signed_in(entity, RIGHTS)
    for url in (f"/api/marketing/datasets/{made['id']}/", f"/api/marketing/datasets/{made['id']}/rows/",
                f"/api/marketing/datasets/{made['id']}/export/"):
        assert mine.get(url).status_code == 404
    assert mine.post(f"/api/marketing/datasets/{made['id']}/send/", {"message": 1, "idempotency_key": "x"},
                     format="json").status_code == 404
    assert mine.get("/api/marketing/datasets/").json()["count"] == 0
    nobody = signed_in(entity, [Right.VIEW_CLIENTS])
    assert nobody.post("/api/marketing/datasets/", {}, format="json").status_code == 403
