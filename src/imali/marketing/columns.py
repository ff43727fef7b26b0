"""The columns of the client-marketing data set, in the seed's order (seed 002, "Report Columns").
Pure: no database. Each column is a key (the stored row's field and the API's name), the words
staff read (the header of the screen and the exports) and a kind that fixes how it is stored,
sorted and written out. `docs/marketing.md` gives a worked example of every one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # text | longtext | int | money | pct | date | bool


TEXT, LONGTEXT, INT, MONEY, PCT, DATE, BOOL = "text", "longtext", "int", "money", "pct", "date", "bool"

COLUMNS: tuple[Column, ...] = (
    Column("home_branch", "Home branch", TEXT),
    Column("client_number", "Client number", INT),
    Column("title", "Title", TEXT),
    Column("initials", "Client initials", TEXT),
    Column("full_names", "Client full names", TEXT),
    Column("name", "Client name", TEXT),
    Column("surname", "Client surname", TEXT),
    Column("id_number", "ID number", TEXT),
    Column("id_type", "ID type", TEXT),
    Column("gender", "Gender", TEXT),
    Column("home_phone", "Home telephone number", TEXT),
    Column("work_phone", "Work telephone number", TEXT),
    Column("cellphone", "Cell phone number", TEXT),
    Column("tax_number", "Tax number", TEXT),
    Column("original_client_number", "Original client number", TEXT),
    Column("client_status", "Client status", TEXT),
    Column("salesperson", "Salesperson", TEXT),
    Column("marketing_info", "Marketing info", TEXT),
    Column("area", "Area", TEXT),
    Column("insolvent", "Insolvent", BOOL),
    Column("garnishee", "Garnishee", BOOL),
    Column("salary", "Salary", MONEY),
    Column("bonus_month", "Bonus month", INT),
    Column("payment_move_direction", "Payment move direction", TEXT),
    Column("payment_frequency", "Payment frequency", TEXT),
    Column("payment_day", "Day of month/week", INT),
    Column("credit_limit", "Credit limit", MONEY),
    Column("available_for_instalment", "Client Detail: Available for Instalment", MONEY),
    Column("pct_available", "% Available", PCT),
    Column("payback_type", "Payback type", TEXT),
    Column("email", "Email", TEXT),
    Column("bank_name", "Bank name", TEXT),
    Column("bank_account_type", "Bank account type", TEXT),
    Column("bank_account_number", "Bank account number", TEXT),
    Column("bank_branch_code", "Bank branch code", TEXT),
    Column("employer_name", "Employer name", TEXT),
    Column("classification", "Classification", TEXT),
    Column("employee_number", "Employee number", TEXT),
    Column("paypoint_number", "Paypoint number", TEXT),
    Column("occupation", "Occupation", TEXT),
    Column("other_employer_reference", "Other employer reference", TEXT),
    Column("contract_expiry_date", "Contract Expiry date", DATE),
    # The seed names "Work telephone number" twice: the second, among the employment columns, is
    # the employer's telephone (the first is the client's own work number).
    Column("employer_telephone", "Work telephone number (employer)", TEXT),
    Column("commencement_of_service", "Commencement of service", DATE),
    Column("appointment_type", "Appointment type", TEXT),
    Column("last_receipt", "Last receipt", DATE),
    Column("days_since_last_receipt", "Days since last receipt", INT),
    Column("last_agreement_date", "Last agreement date", DATE),
    Column("last_agreement_product", "Last agreement product", TEXT),
    Column("days_since_last_loan", "Days since last loan", INT),
    Column("outstanding", "Outstanding", MONEY),
    Column("next_date_due", "Next date due", DATE),
    Column("next_amount_due", "Next amount due", MONEY),
    Column("change_available", "Change available", MONEY),
    Column("non_loan_debt", "Non-loan debt", MONEY),
    Column("physical_address", "Physical address", LONGTEXT),
    Column("postal_address", "Postal address", LONGTEXT),
    Column("historically_disadvantaged", "Historically disadvantaged person", BOOL),
    Column("budget_available_for_instalment", "Available for instalment according to latest budget", MONEY),
    Column("due_30", "30 Days", MONEY),
    Column("due_60", "60 Days", MONEY),
    Column("due_90", "90 Days", MONEY),
    Column("due_120", "120 Days", MONEY),
    Column("due_120_plus", "120+ Days", MONEY),
    Column("pct_of_all_capital_pd", "%OfAllCapitalPD", PCT),
    Column("last_note", "Last note", LONGTEXT),
    Column("last_display_note", "Last display note", LONGTEXT),
    # Only when the run asked for it ("Calculate settlement amount"); otherwise empty and not shown.
    Column("settlement", "Settlement amount", MONEY),
)

BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}
KEYS: tuple[str, ...] = tuple(c.key for c in COLUMNS)

# Free text a person typed: an export writes it as text, never as a spreadsheet formula.
FREE_TEXT_KEYS = frozenset(c.key for c in COLUMNS if c.kind in (TEXT, LONGTEXT))


def shown_columns(*, with_settlement: bool) -> tuple[Column, ...]:
    """The columns of a data set: every one, the settlement only when the run calculated it."""
    return COLUMNS if with_settlement else tuple(c for c in COLUMNS if c.key != "settlement")


def yes_no(value: bool | None) -> str:
    return "" if value is None else ("Yes" if value else "No")
