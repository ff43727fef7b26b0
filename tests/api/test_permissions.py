"""HasRight on plain APIViews: several rights per action, unmapped methods closed."""

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from imali.api.permissions import HasRight
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


class ApprovalsView(APIView):
    permission_classes = [HasRight]
    required_rights = {"get": Right.VIEW_CLIENTS, "post": (Right.VIEW_CLIENTS, Right.APPROVE_LOANS)}

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})

    def delete(self, request):
        return Response(status=204)


def call(method, user):
    request = getattr(APIRequestFactory(), method)("/approvals/")
    force_authenticate(request, user=user)
    return ApprovalsView.as_view()(request)


def test_every_right_of_a_tuple_is_needed(entity):
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    approver_only = factories.make_user(entity=entity, rights=[Right.APPROVE_LOANS])
    both = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS, Right.APPROVE_LOANS])
    assert call("get", viewer).status_code == 200
    refused = call("post", viewer)
    assert refused.status_code == 403
    assert refused.data["detail"] == "You need the right: Approve loans."
    assert call("post", approver_only).status_code == 403
    assert call("post", both).status_code == 200


def test_a_method_without_rights_is_closed_even_to_an_administrator(entity):
    admin = factories.make_admin(entity=entity)
    response = call("delete", admin)
    assert response.status_code == 403
    assert response.data["detail"] == "This action has no right assigned and is closed."


def test_operators_and_superusers_without_entity_are_refused(operator):
    assert call("get", operator).status_code == 403
    assert "operators have no entity data" in call("get", operator).data["detail"]
