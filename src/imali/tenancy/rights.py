"""The named rights of DOMAIN §2. Each is a Django permission on the `tenancy.Right` holder model.

Roles are sets of these; a user's rights are the union of their roles' rights, always applied
inside the user's own entity.
"""

from __future__ import annotations

from django.db import models


class Right(models.TextChoices):
    # Foundation: clients, employers, administration.
    VIEW_CLIENTS = "view_clients", "Clients: view and search"
    MANAGE_CLIENTS = "manage_clients", "Clients: create and edit"
    MANAGE_EMPLOYERS = "manage_employers", "Employers: create and edit"
    MANAGE_USERS = "manage_users", "Security: manage users and roles of the entity"
    MANAGE_BRANCHES = "manage_branches", "Setups: regions and branches"
    VIEW_AUDIT = "view_audit", "Security: view the audit log"
    # Messaging and reports (DOMAIN §2).
    MAXSMS_PROCESSING = "maxsms_processing", "Processing: MAXSMS (batch sends, get replies)"
    SEND_SINGLE_SMS = "send_single_sms", "SMS: send single SMS"
    MAXSMS_GENERAL_SETUP = "maxsms_general_setup", "MAXSMS General Setup"
    MAXSMS_ARREARS_SETUP = "maxsms_arrears_setup", "MAXSMS Payment Arrears Setup"
    MAXSMS_REPLIES_SETUP = "maxsms_replies_setup", "MAXSMS Replies Setup"
    MAXSMS_MESSAGE_SETUP = "maxsms_message_setup", "MAXSMS Message Setup"
    MAXMAIL_GENERAL_SETUP = "maxmail_general_setup", "MAXMAIL General Setup"
    MAXMAIL_MESSAGE_SETUP = "maxmail_message_setup", "MAXMAIL Message Setup"
    REPORT_SMS_DETAIL = "report_sms_detail", "Reports: SMS Detail"
    REPORT_MIS_DETAIL = "report_mis_detail", "Reports: MIS Detail"
    REPORT_REPLY_DETAIL = "report_reply_detail", "Reports: Reply Detail"
    REPORT_LOGIN_DETAIL = "report_login_detail", "Reports: Login Detail"
    REPORT_CONTRACTS_ISSUED = "report_contracts_issued", "Reports: Contracts issued (OTP)"
    CLEAR_ENROLMENT = "clear_enrolment", "Clear Enrolment (change an enrolled cellphone)"
    OVERRIDE_LOAN_OTP = "override_loan_otp", "Override Loan OTP"
    CLIENT_MARKETING = "client_marketing", "Processing: Client Marketing"
    VIEW_LOGS = "view_logs", "Processing: View Logs"
    PAYMENT_STREAM_WEB_SERVICES = "payment_stream_ws", "Allow access to payment-stream web services"
    # Loans.
    MANAGE_PRODUCTS = "manage_products", "Setups: loan products"
    CAPTURE_LOANS = "capture_loans", "Loans: capture applications"
    APPROVE_LOANS = "approve_loans", "Approve loans"
    DISBURSE_LOANS = "disburse_loans", "Disburse (within the user's disbursement limit)"
    CAPTURE_RECEIPTS = "capture_receipts", "Receipts: capture"
    REVERSE_RECEIPTS = "reverse_receipts", "Receipts: reverse"
    # Mobile money (DOMAIN §8): payments in and out use the receipt and disbursement rights above.
    MOBILE_MONEY_SETUP = "mobile_money_setup", "Setups: mobile-money providers (M-PESA, MTN MoMo)"


def perm(right: Right) -> str:
    """The `app_label.codename` string Django's permission checks take."""
    return f"tenancy.{right.value}"
