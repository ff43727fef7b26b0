"""Query parameters are what the schema says they are: a bad value is a 400 naming it."""

import pytest

from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(entity, signed_in):
    factories.make_client(entity=entity)
    return signed_in(entity, list(Right))


@pytest.mark.parametrize(("query", "name"), [
    ("offset=null", "offset"), ("offset=-1", "offset"), ("offset=", "offset"), ("offset=1.5", "offset"),
    ("limit=null", "limit"), ("limit=0", "limit"), ("limit=-5", "limit"), ("limit=\u0661", "limit"),
])
def test_bad_paging_is_a_400_naming_the_parameter(reader, query, name):
    response = reader.get(f"/api/clients/?{query}")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [name]


def test_good_paging_still_pages_and_a_huge_limit_is_cut_to_the_ceiling(reader):
    body = reader.get("/api/clients/?limit=1&offset=0").json()
    assert body["count"] == 1 and len(body["results"]) == 1
    assert reader.get("/api/clients/?offset=5").json()["results"] == []
    assert reader.get("/api/clients/?limit=100000").status_code == 200


@pytest.mark.parametrize(("url", "name"), [
    ("/api/loans/?client=null", "client"), ("/api/loans/?status=nonsense", "status"),
    ("/api/receipts/?loan=null", "loan"), ("/api/change-refunds/?client=-1", "client"),
    ("/api/non-loan-debits/?open=null", "open"), ("/api/signing/reports/contracts/?user=null", "user"),
    ("/api/signing/reports/logins/?date_to=", "date_to"), ("/api/messaging/reports/sms-detail/?user=", "user"),
    # Past a database id: the filter overflowed the database driver, a 500.
    ("/api/receipts/?client=99999999999999999999999", "client"), ("/api/loans/?client=9223372036854775808", "client"),
    ("/api/payment-stream/mandates/?loan=99999999999999999999999", "loan"),
    ("/api/signing/reports/contracts/?branch=99999999999999999999999", "branch"),
    # Any text matched nothing, and a NUL in it was a 500 on PostgreSQL (schemathesis deep run).
    ("/api/signing/reports/contracts/?method=nonsense", "method"), ("/api/signing/reports/contracts/?method=otp%00", "method"),
])
def test_bad_filters_are_a_400_naming_the_filter(reader, url, name):
    response = reader.get(url)
    assert response.status_code == 400, response.content
    assert name in response.json()


def test_an_unmatched_api_url_is_a_json_404(reader):
    response = reader.get("/api/messaging/clients/null/sms/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_the_schema_documents_refusals_plain_lists_and_blank_values(reader):
    schema = reader.get("/api/schema/?format=json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    for url in ("/api/messaging/credits/", "/api/messaging/templates/"):
        assert paths[url]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array", url
        assert not [p for p in paths[url]["get"].get("parameters", []) if p["name"] in ("limit", "offset")], url
    for url, operations in paths.items():
        for method, operation in operations.items():
            if url == "/api/auth/token/" and method == "post":
                continue
            assert {"401", "403"} <= set(operation["responses"]), (method, url)
            if "{" in url:
                assert "404" in operation["responses"], (method, url)
    offset = next(p for p in paths["/api/clients/"]["get"]["parameters"] if p["name"] == "offset")
    assert offset["schema"]["minimum"] == 0
    email = components["Client"]["properties"]["email"]
    assert {"type": "string", "maxLength": 0} in email["oneOf"]


def _served(reader) -> dict:
    return reader.get("/api/schema/?format=json").json()


def test_every_id_filter_says_its_range_and_the_largest_is_read(reader):
    schema = _served(reader)
    ids = [(path, method, parameter["name"], parameter["schema"])
           for path, operations in schema["paths"].items() for method, operation in operations.items()
           for parameter in operation.get("parameters", [])
           if parameter["in"] == "query" and parameter["schema"].get("type") == "integer"]
    assert ids
    unbounded = [(path, method, name) for path, method, name, bounds in ids
                 if "minimum" not in bounds or (name not in ("limit", "offset") and "maximum" not in bounds)]
    assert unbounded == []
    assert reader.get("/api/receipts/?client=9223372036854775807").json()["results"] == []


def test_the_schema_says_the_choices_dates_and_ranges_the_api_keeps(reader, entity):
    schema = _served(reader)
    components = schema["components"]["schemas"]

    def query(path, name):
        return next(p["schema"] for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name)

    assert query("/api/payment-stream/collections/", "kind")["enum"] == ["collected", "failed", "unpaid"]
    for path in ("/api/loans/{loan_id}/", "/api/loans/{loan_id}/settlement/", "/api/client-figures/{client_id}/"):
        assert query(path, "as_of") == {"type": "string", "format": "date"}
    assert components["ProductWriteRequest"]["properties"]["max_instalments"]["minimum"] == 1
    # "" is no date either, as everywhere else; before, it was read as today.
    client = factories.make_client(entity=entity)
    blank = reader.get(f"/api/client-figures/{client.pk}/?as_of=")
    assert blank.status_code == 400 and list(blank.json()) == ["as_of"]
    refused = reader.put("/api/signing/setup/", {"code_length": 11}, format="json")
    assert refused.status_code == 400 and refused.json() == {"code_length": ["Choose 6 to 10."]}
    # JSON only, as the other settings: a form's blank threshold was taken as "not given".
    assert list(schema["paths"]["/api/signing/setup/"]["put"]["requestBody"]["content"]) == ["application/json"]
    assert reader.put("/api/signing/setup/", {"threshold": ""}, format="multipart").status_code == 415


def test_every_write_documents_its_400_and_only_lists_answer_pages(reader):
    schema = _served(reader)
    operations = [(method.upper(), path, operation) for path, operations in schema["paths"].items()
                  for method, operation in operations.items() if isinstance(operation, dict) and "responses" in operation]
    writes_without_400 = [(method, path) for method, path, operation in operations
                          if method in ("POST", "PUT", "PATCH", "DELETE") and "400" not in operation["responses"]]
    assert writes_without_400 == []
    # A batch resumed when it is not failed is a 400 from the service, with no body in the request.
    assert "400" in schema["paths"]["/api/messaging/batches/{messagebatch_id}/resume/"]["post"]["responses"]
    pages_from_writes = [(method, path) for method, path, operation in operations
                         if method != "GET" and "Paginated" in str(operation["responses"].get("200", ""))]
    assert pages_from_writes == []


def test_a_report_export_still_refuses_bad_paging(reader):
    response = reader.get("/api/messaging/reports/sms-detail/?export=csv&offset=-1")
    assert response.status_code == 400 and list(response.json()) == ["offset"]
    assert reader.get("/api/messaging/reports/sms-detail/?export=csv&offset=0").status_code == 200


@pytest.mark.parametrize("url", [
    "/api/messaging/reports/reply-detail/?date_from=0001-01-01", "/api/messaging/reports/reply-detail/?date_to=9999-12-31",
    "/api/messaging/reports/reply-detail/?date_from=0001-01-01&export=csv",
    "/api/messaging/reports/sms-detail/?date_from=0001-01-01", "/api/messaging/reports/sms-detail/?date_to=9999-12-31",
    "/api/messaging/reports/sms-detail/?date_from=0001-01-01&export=csv",
    "/api/signing/reports/logins/?date_from=0001-01-01", "/api/signing/reports/logins/?date_to=9999-12-31",
    "/api/signing/reports/contracts/?date_from=0001-01-01", "/api/signing/reports/otp-audit/?date_to=9999-12-31",
])
def test_a_report_day_outside_the_product_s_days_is_a_400_naming_it(reader, url):
    """Schemathesis (deep run): ?date_from=0001-01-01 on Reply Detail's export and on Login Detail
    overflowed turning the day's local midnight into a datetime, a 500."""
    response = reader.get(url)
    assert response.status_code == 400, response.content
    name = "date_from" if "date_from" in url else "date_to"
    assert response.json() == {name: ["Give a date from 1900-01-01 to 2100-12-31."]}


def test_the_contracts_report_lists_its_methods_and_still_filters_by_one(reader):
    schema = reader.get("/api/schema/?format=json").json()
    parameters = schema["paths"]["/api/signing/reports/contracts/"]["get"]["parameters"]
    assert next(p for p in parameters if p["name"] == "method")["schema"]["enum"] == ["hand", "otp", "override"]
    assert reader.get("/api/signing/reports/contracts/?method=hand").status_code == 200


def test_a_patch_that_validates_the_whole_body_says_what_it_requires(reader):
    """Schemathesis (deep run, positive data): the schema offered PATCH /api/messaging/sms-types/ a
    partial body (nothing required), but `{}` is refused: both fields are needed."""
    schema = reader.get("/api/schema/?format=json").json()
    body = schema["paths"]["/api/messaging/sms-types/"]["patch"]["requestBody"]
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert body["required"] is True
    assert sorted(schema["components"]["schemas"][name]["required"]) == ["enabled", "message_type"]
    refused = reader.patch("/api/messaging/sms-types/", {}, format="json")
    assert refused.status_code == 400 and set(refused.json()) == {"enabled", "message_type"}
