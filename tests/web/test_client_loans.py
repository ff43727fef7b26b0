"""The client page lists the client's loans and links to a new application and the statement."""

from decimal import Decimal

import pytest
from django.urls import reverse

from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_borrower, make_loan

pytestmark = pytest.mark.django_db


def test_client_page_lists_the_clients_loans_only_with_apply_and_statement_links(client, login_as, entity, admin_user):
    login_as(entity, [Right.VIEW_CLIENTS, Right.CAPTURE_LOANS])
    admin_user.disbursement_limit = Decimal("100000")
    admin_user.save()
    borrower, _ = make_borrower(entity)
    first = make_loan(entity, user=admin_user, client=borrower, principal="2000")
    second = make_loan(entity, user=admin_user, client=borrower, principal="3500")
    someone_else = make_loan(entity, user=admin_user)
    response = client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk}))
    assert [loan.pk for loan in response.context["loans"]] == [second.pk, first.pk]
    page = response.content.decode()
    for loan in (first, second):
        assert reverse("web:loan_detail", kwargs={"loan_id": loan.pk}) in page
    assert reverse("web:loan_detail", kwargs={"loan_id": someone_else.pk}) not in page
    assert "3,500.00" in page and first.product.name in page
    assert reverse("web:loan_apply", kwargs={"client_id": borrower.pk}) in page
    assert reverse("web:client_statement", kwargs={"client_id": borrower.pk}) in page


def test_apply_link_only_for_users_who_capture_loans(client, login_as, entity, admin_user):
    login_as(entity, [Right.VIEW_CLIENTS])
    borrower = factories.make_client(entity=entity, actor=admin_user)
    response = client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk}))
    page = response.content.decode()
    assert response.context["loans"] == [] and "No loans." in page
    assert reverse("web:loan_apply", kwargs={"client_id": borrower.pk}) not in page
    assert reverse("web:client_statement", kwargs={"client_id": borrower.pk}) in page
