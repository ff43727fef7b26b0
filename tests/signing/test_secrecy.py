"""No code ever appears in the logs, in the database in clear, or in an error message: a whole
enrolment + signing flow (with wrong tries, a resend and a sign-in code) runs with every logger
captured at DEBUG, then every text column of every table is searched for each code sent."""

from __future__ import annotations

import logging

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection

from imali.signing import services
from imali.signing.services import Document

from .conftest import code_sent

pytestmark = pytest.mark.django_db


def database_text() -> str:
    """Every row of every table, as text (binary columns as bytes' repr and latin-1 text)."""
    chunks = []
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            table = model._meta.db_table
            if table not in connection.introspection.table_names():
                continue
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        chunks.append(bytes(value).decode("latin-1"))
                    else:
                        chunks.append(str(value))
    return "\n".join(chunks)


def test_no_code_in_logs_database_or_errors(setup, admin, officer, borrower, application, caplog):
    # Ten digits: a six-digit code could turn up by chance in a timestamp's microseconds or a PDF's
    # coordinates, and the test must only fail when the code itself leaks.
    services.otp_setup_update(actor=admin, entity=setup.entity, data={"code_length": 10})
    caplog.set_level(logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    connection.force_debug_cursor = True  # SQL statements with their parameters go to django.db.backends
    codes, errors = [], []
    try:
        entity = setup.entity
        challenge = services.enrolment_send(actor=officer, entity=entity, client=borrower, ip="10.9.9.9")
        codes.append(code_sent(challenge))
        services.enrolment_verify(actor=officer, entity=entity, client=borrower, challenge_id=challenge.public_id,
                                  code=codes[-1], ip="10.9.9.9")
        document = Document(loan=application)
        first = services.document_otp_send(actor=officer, entity=entity, document=document, ip="10.9.9.9")
        codes.append(code_sent(first))
        second = services.document_otp_send(actor=officer, entity=entity, document=document, ip="10.9.9.9")
        codes.append(code_sent(second))
        for wrong in (codes[-2], "0000000000"):
            try:
                services.document_otp_verify(actor=officer, entity=entity, document=document,
                                             challenge_id=second.public_id if wrong == "0000000000" else first.public_id,
                                             code=wrong, ip="10.9.9.9")
            except ValidationError as exc:
                errors.append(str(exc.messages))
        signature = services.document_otp_verify(actor=officer, entity=entity, document=document,
                                                 challenge_id=second.public_id, code=codes[-1], ip="10.9.9.9")
        services.otp_setup_update(actor=admin, entity=entity, data={"user_otp": True})
        login = services.login_otp_send(user=officer, ip="10.9.9.9")
        codes.append(code_sent(login))
        services.login_otp_verify(user=officer, challenge_id=login.public_id, code=codes[-1], ip="10.9.9.9")
    finally:
        connection.force_debug_cursor = False
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert signature.pk and len(errors) == 2
    log_text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "INSERT" in log_text  # the SQL log was captured, so its absence of codes means something
    db_text = database_text()
    assert all(len(code) == 10 for code in codes)
    for code in codes:
        assert code not in log_text, "a code was logged"
        assert code not in db_text, "a code is in the database in clear"
        assert all(code not in e for e in errors), "a code is in an error message"
