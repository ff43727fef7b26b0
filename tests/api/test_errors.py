from django.core.exceptions import (
    NON_FIELD_ERRORS,
    ObjectDoesNotExist,
    PermissionDenied,
    ValidationError,
)

from imali.api.errors import exception_handler


def handle(exc):
    return exception_handler(exc, {})


def test_field_errors_keep_their_fields_codes_and_params():
    response = handle(ValidationError({
        "cellphone": [ValidationError("'%(value)s' is not a cellphone number.", code="invalid_phone", params={"value": "12"})],
        NON_FIELD_ERRORS: [ValidationError("Choose an employer or a paypoint, not both.", code="conflict")],
    }))
    assert response.status_code == 400
    assert response.data == {
        "cellphone": ["'12' is not a cellphone number."],
        "non_field_errors": ["Choose an employer or a paypoint, not both."],
    }
    assert response.data["cellphone"][0].code == "invalid_phone"


def test_errors_without_a_field_are_non_field_errors():
    response = handle(ValidationError(["First problem.", "Second problem."]))
    assert response.status_code == 400
    assert response.data == {"non_field_errors": ["First problem.", "Second problem."]}


def test_permission_denied_and_missing_rows():
    assert handle(PermissionDenied("Operators only.")).status_code == 403
    assert handle(PermissionDenied("Operators only.")).data["detail"] == "Operators only."
    assert handle(ObjectDoesNotExist()).status_code == 404
