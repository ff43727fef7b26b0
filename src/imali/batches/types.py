"""The seven manual batch types of DOMAIN §5, what each sends and which criteria it takes.
Pure: no database."""

from __future__ import annotations

from django.db import models

from imali.messaging.models import MessageType


class BatchType(models.TextChoices):
    ARREARS = "arrears", "Payment arrears"
    PAYMENT_RECEIVED = "payment_received", "Payment received"
    NEW_LOAN = "new_loan", "New loan"
    REPEAT_LOAN = "repeat_loan", "Repeat loan"
    PAYMENT_FINAL = "payment_final", "Payment final"
    CRM = "crm", "CRM"
    CRM_LOAN_STATUS = "crm_loan_status", "CRM on loan status"


# The message type (template, SMS type switch, outbox type) each batch sends.
MESSAGE_TYPE: dict[str, str] = {
    BatchType.ARREARS: MessageType.ARREARS,
    BatchType.PAYMENT_RECEIVED: MessageType.PAYMENT_RECEIVED,
    BatchType.NEW_LOAN: MessageType.NEW_LOAN,
    BatchType.REPEAT_LOAN: MessageType.REPEAT_LOAN,
    BatchType.PAYMENT_FINAL: MessageType.PAYMENT_FINAL,
    BatchType.CRM: MessageType.CRM,
    BatchType.CRM_LOAN_STATUS: MessageType.CRM,
}

# Direct marketing (POPIA s69): opt-outs and consent apply, the text names the sender and how to
# opt out. The other types are account notices about the client's own loans.
MARKETING_TYPES = frozenset({BatchType.CRM, BatchType.CRM_LOAN_STATUS})

# Who each type reaches, in the words of the criteria screen.
RECIPIENTS: dict[str, str] = {
    BatchType.ARREARS: "Clients with an instalment in arrears that fell due in the date range, whose arrears are at "
                       "least the minimum amount (never deceased clients, nor those under debt review or handed over).",
    BatchType.PAYMENT_RECEIVED: "Clients in good standing who may take new loans, where a payment in the date range "
                                "(of at least the minimum) made an instalment paid.",
    BatchType.NEW_LOAN: "Inactive clients who may take new loans and owe nothing.",
    BatchType.REPEAT_LOAN: "Clients in good standing who may take new loans, have borrowed before and paid every "
                           "earlier loan.",
    BatchType.PAYMENT_FINAL: "Clients in good standing who may take new loans with only the final instalment of a "
                             "loan still to pay.",
    BatchType.CRM: "Any clients you choose by branch, employer, status and whether they have a loan on the book.",
    BatchType.CRM_LOAN_STATUS: "Clients with a loan in the status you choose (never deceased clients, nor those under "
                               "debt review or handed over).",
}

# The criteria each type takes (the names of the form and API fields); required ones marked.
CRITERIA: dict[str, tuple[str, ...]] = {
    BatchType.ARREARS: ("due_from", "due_to", "min_arrears"),
    BatchType.PAYMENT_RECEIVED: ("paid_from", "paid_to", "min_payment"),
    BatchType.NEW_LOAN: ("employer",),
    BatchType.REPEAT_LOAN: ("employer",),
    BatchType.PAYMENT_FINAL: (),
    BatchType.CRM: ("branch", "employer", "client_status", "has_open_loan"),
    BatchType.CRM_LOAN_STATUS: ("loan_status",),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    BatchType.ARREARS: ("due_from", "due_to"),
    BatchType.PAYMENT_RECEIVED: ("paid_from", "paid_to"),
    BatchType.CRM_LOAN_STATUS: ("loan_status",),
}


class DropReason(models.TextChoices):
    """Why a client the rules chose gets no message, counted per reason on the preview and in the
    process log."""

    TYPE_DISABLED = "type_disabled", "This SMS type is switched off for the entity"
    NO_CELLPHONE = "no_cellphone", "No cellphone number"
    DUPLICATE_NUMBER = "duplicate_number", "Cellphone number shared with another client in the batch"
    OPTED_OUT = "opted_out", "Answered STOP (opted out of marketing)"
    NO_CONSENT = "no_consent", "Has not agreed to marketing messages"
    RENDER_FAILED = "render_failed", "A merge field of the message has no value for the client"
