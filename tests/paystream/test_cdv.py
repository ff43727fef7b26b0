"""Check-digit verification against the SAMPLE table (src/imali/paystream/data/cdv_sample.csv).

Every vector is worked by hand below: the account number is zero-padded to 11 digits, each digit
times the row's weight (left to right), plus the fudge factor; valid when divisible by the modulus.
"""

from __future__ import annotations

import pytest

from imali.paystream import cdv
from imali.paystream.cdv import CdvError, CdvFailure, CdvTableError


@pytest.fixture(scope="module")
def table():
    return cdv.load_table()


def test_absa_valid_mod11(table):
    # 632005, row "0 0 9 8 7 6 5 4 3 2 1" mod 11. 4012345679 → 04012345679:
    # 1×8 + 2×7 + 3×6 + 4×5 + 5×4 + 6×3 + 7×2 + 9×1 = 8+14+18+20+20+18+14+9 = 121 = 11×11.
    result = cdv.verify(table, branch_code="632005", account_number="4012345679")
    assert (result.bank, result.exception_used) == ("ABSA", "")


def test_absa_one_digit_off_fails_naming_the_branch(table):
    # 4012345678: 121 - 1 = 120; 120 mod 11 = 10; the savings alternative needs a last digit 0.
    with pytest.raises(CdvError) as caught:
        cdv.verify(table, branch_code="632005", account_number="4012345678")
    assert caught.value.code == CdvFailure.CHECK_DIGIT
    assert caught.value.field == "account_number"
    assert str(caught.value) == "The account number fails the check digit for branch 632005."


def test_mod11_check_digit_ten_written_as_zero(table):
    # 4012345610: 8+14+18+20+20+18+1×2+0 = 100; 100 mod 11 = 1 with a last digit 0: rule ten_as_zero.
    assert cdv.verify(table, branch_code="632005", account_number="4012345610").exception_used == "ten_as_zero"
    # 4012345611: 101 mod 11 = 2: the rule does not apply (last digit not 0).
    with pytest.raises(CdvError):
        cdv.verify(table, branch_code="632005", account_number="4012345611")


def test_cascade_second_row_only_for_its_account_type(table):
    # 4012345670: first row 8+14+18+20+20+18+14+0 = 112, mod 11 = 2: refused. The savings row
    # (weight 1 on the last digit only, mod 10) gives 0: accepted for savings, not for cheque.
    assert cdv.verify(table, branch_code="632005", account_number="4012345670", account_type="savings").row_line == 8  # the file line of the savings row
    with pytest.raises(CdvError):
        cdv.verify(table, branch_code="632005", account_number="4012345670", account_type="cheque")


def test_fudge_factor_counts(table):
    # Nedbank 198765, weights "1 2 3 4 5 6 7 8 9 10 1", mod 11, fudge 5. 1001234565 → 01001234565:
    # 1×2 + 1×5 + 2×6 + 3×7 + 4×8 + 5×9 + 6×10 + 5×1 = 2+5+12+21+32+45+60+5 = 182; +5 = 187 = 17×11.
    assert cdv.verify(table, branch_code="198765", account_number="1001234565").bank == "Nedbank"
    # Without the fudge 182 would be needed a multiple of 11: 1001234560 gives 177+0+5 = 182, refused.
    with pytest.raises(CdvError):
        cdv.verify(table, branch_code="198765", account_number="1001234560")


def test_suffix_rule_checks_the_number_without_its_last_two_digits(table):
    # Standard Bank 051001, weights "0 0 2 3 4 5 6 7 8 9 1", mod 11.
    # 123456782 → 00123456782: 2+6+12+20+30+42+56+72+2 = 242 = 22×11.
    assert cdv.verify(table, branch_code="051001", account_number="123456782").exception_used == ""
    # 12345678200 plainly: 3×2+4×3+5×4+6×5+7×6+8×7+2×8 = 182, mod 11 = 6; without "00" it is the
    # number above: accepted by rule suffix_two.
    assert cdv.verify(table, branch_code="051001", account_number="12345678200").exception_used == "suffix_two"


def test_fnb_mod10_and_wrong_length(table):
    # 250655, weights "0 1 2 1 2 1 2 1 2 1 1", mod 10. 62000000008: 2×1 + 8×1 = 10.
    assert cdv.verify(table, branch_code="250655", account_number="620 0000 0008").bank == "FNB"
    with pytest.raises(CdvError) as caught:
        cdv.verify(table, branch_code="250655", account_number="6200000008")
    assert caught.value.code == CdvFailure.WRONG_LENGTH
    assert "branch 250655 has 11 digits; this one has 10" in str(caught.value)


def test_unknown_branch_and_bad_input(table):
    with pytest.raises(CdvError) as caught:
        cdv.verify(table, branch_code="999999", account_number="4012345679")
    assert (caught.value.code, caught.value.field) == (CdvFailure.UNKNOWN_BRANCH, "branch_code")
    assert "999999 is not in the check-digit table" in str(caught.value)
    with pytest.raises(CdvError) as caught:
        cdv.verify(table, branch_code="63200", account_number="4012345679")
    assert caught.value.field == "branch_code"
    with pytest.raises(CdvError) as caught:
        cdv.verify(table, branch_code="632005", account_number="40123A5679")
    assert caught.value.code == CdvFailure.NOT_DIGITS
    with pytest.raises(CdvError) as caught:
        cdv.verify(table, branch_code="632005", account_number="123456789012")
    assert caught.value.code == CdvFailure.WRONG_LENGTH
    # Zero is divisible by every modulus; an all-zero number is refused before the table.
    with pytest.raises(CdvError):
        cdv.verify(table, branch_code="632005", account_number="0000000000")


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("a,b\n1,2", "header must be"),
    ("branch_from,branch_to,account_type,lengths,modulus,fudge,weights,exception,bank\n"
     "1,2,any,10,11,0,1 2 3,,X", "line 2: 3 weights, expected 11"),
    ("branch_from,branch_to,account_type,lengths,modulus,fudge,weights,exception,bank\n"
     "1,2,any,10,11,0,1 1 1 1 1 1 1 1 1 1 1,Q,X", "exception rule 'Q' is not one this module implements"),
    ("branch_from,branch_to,account_type,lengths,modulus,fudge,weights,exception,bank\n"
     "5,2,any,10,11,0,1 1 1 1 1 1 1 1 1 1 1,,X", "runs backwards"),
    ("branch_from,branch_to,account_type,lengths,modulus,fudge,weights,exception,bank\n"
     "1,2,loan,10,11,0,1 1 1 1 1 1 1 1 1 1 1,,X", "account type 'loan'"),
])
def test_bad_table_files_name_the_line(text, message):
    with pytest.raises(CdvTableError, match=message):
        cdv.parse_table(text.splitlines())
