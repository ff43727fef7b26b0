"""Phone and ID parsing, with DOMAIN §9's vectors and Hypothesis properties."""

from __future__ import annotations

import datetime as dt

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st
from stdnum import exceptions as stdnum_errors
from stdnum.za import idnr

from imali.core.idnumbers import check_sa_id
from imali.core.phones import parse_phone

# --- SA ID numbers ------------------------------------------------------------------------------


def test_domain_vectors():
    assert check_sa_id("7503305044089", date_of_birth=dt.date(1975, 3, 30), gender="M") == {}
    assert check_sa_id("8503305044089", date_of_birth=None, gender=None)["id_number"][0].code == "id_checksum"
    assert check_sa_id("9002295000183", date_of_birth=None, gender=None)["id_number"][0].code == "id_date"


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


sa_ids = st.builds(
    lambda born, sequence, citizen: (born, sequence, f"{born:%y%m%d}{sequence:04d}{citizen}8"),
    st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2005, 12, 31)),
    st.integers(min_value=0, max_value=9999),
    st.sampled_from([0, 1]),
).map(lambda t: (t[0], t[1], t[2] + _luhn_digit(t[2])))


@given(sa_ids)
def test_any_well_formed_id_is_accepted_with_its_own_birth_date_and_gender(case):
    born, sequence, number = case
    gender = "M" if sequence >= 5000 else "F"
    assert check_sa_id(number, date_of_birth=born, gender=gender) == {}
    wrong_gender = "F" if gender == "M" else "M"
    assert set(check_sa_id(number, date_of_birth=born, gender=wrong_gender)) == {"gender"}
    other_day = born + dt.timedelta(days=1)
    assert set(check_sa_id(number, date_of_birth=other_day, gender=gender)) == {"date_of_birth"}


@given(sa_ids, st.integers(min_value=1, max_value=9))
def test_a_changed_check_digit_is_refused(case, delta):
    _, _, number = case
    broken = number[:-1] + str((int(number[-1]) + delta) % 10)
    errors = check_sa_id(broken, date_of_birth=None, gender=None)
    assert errors and set(errors) == {"id_number"}
    with pytest.raises(stdnum_errors.ValidationError):
        idnr.validate(broken)


@given(st.text(max_size=20))
def test_garbage_never_crashes_and_names_the_field(text):
    errors = check_sa_id(text, date_of_birth=None, gender=None)
    if errors:
        assert set(errors) == {"id_number"}
    else:
        assert idnr.is_valid(text)


# --- Phones ------------------------------------------------------------------------------------

MOBILE_PREFIXES = {"ZA": ("+27", ["60", "71", "72", "73", "74", "76", "78", "79", "81", "82", "83", "84"], 7),
                   "NA": ("+264", ["81", "85"], 7),
                   "BW": ("+267", ["71", "72", "73", "74", "75", "76", "77"], 6),
                   "SZ": ("+268", ["76", "78", "79"], 6),
                   "ZM": ("+260", ["95", "96", "97"], 7)}

mobiles = st.sampled_from(sorted(MOBILE_PREFIXES)).flatmap(
    lambda country: st.tuples(
        st.just(country),
        st.sampled_from(MOBILE_PREFIXES[country][1]),
        st.text("0123456789", min_size=MOBILE_PREFIXES[country][2], max_size=MOBILE_PREFIXES[country][2]),
    )
)


@given(mobiles, st.sampled_from(["international", "national", "spaced"]))
def test_mobiles_of_each_country_parse_to_the_same_e164_from_any_format(case, style):
    country, prefix, rest = case
    code = MOBILE_PREFIXES[country][0]
    e164 = f"{code}{prefix}{rest}"
    parsed_number = phonenumbers.parse(e164, None)
    if not phonenumbers.is_valid_number(parsed_number):
        with pytest.raises(ValidationError):
            parse_phone(e164, country=country, field="cellphone", mobile=True)
        return
    national = phonenumbers.format_number(parsed_number, phonenumbers.PhoneNumberFormat.NATIONAL)
    raw = {"international": e164, "national": national, "spaced": " ".join(national)}[style]
    assert parse_phone(raw, country=country, field="cellphone", mobile=True) == e164


@given(st.text(max_size=25))
def test_any_input_gives_e164_or_an_error_naming_the_field(text):
    try:
        result = parse_phone(text, country="ZA", field="work_phone")
    except ValidationError as exc:
        assert list(exc.error_dict) == ["work_phone"]
    else:
        assert result.startswith("+27") and len(result) == 12


def test_za_needs_nine_national_digits_even_where_metadata_allows_eight():
    with pytest.raises(ValidationError) as err:
        parse_phone("08212345", country="ZA", field="cellphone")
    assert "cellphone" in err.value.error_dict
    assert parse_phone("082 123 4567", country="ZA", field="cellphone", mobile=True) == "+27821234567"


def test_a_number_of_another_country_is_refused():
    with pytest.raises(ValidationError) as err:
        parse_phone("+264811234567", country="ZA", field="cellphone")
    assert err.value.error_dict["cellphone"][0].code == "wrong_country"


def test_landline_is_not_a_cellphone():
    with pytest.raises(ValidationError) as err:
        parse_phone("011 555 1234", country="ZA", field="cellphone", mobile=True)
    assert err.value.error_dict["cellphone"][0].code == "not_mobile"


@pytest.mark.parametrize("raw", [
    "0821234567 ext 12", "0821234567 ext. 12", "+27-82-1234567x", "+27821234567;ext=5", "082 123 4567 x12",
    "0821234567#", "0821234567 abc", "082 CALL ME1", "0821234567,", "+27 82 123 4567 / 8", "082-123-4567 (home)",
    "+27821234567\n1", "+27821234567\x00", "0821234567 \u0660", "\uff10\uff18\uff12\uff11\uff12\uff13\uff14\uff15\uff16\uff17",
    "++27821234567", "27+821234567",
])
def test_extensions_and_trailing_junk_are_refused_naming_the_field(raw):
    with pytest.raises(ValidationError) as err:
        parse_phone(raw, country="ZA", field="cellphone", mobile=True)
    assert list(err.value.error_dict) == ["cellphone"]
    assert err.value.error_dict["cellphone"][0].code in {"phone_extension", "invalid_phone"}


@pytest.mark.parametrize("raw", ["082 123 4567", "082-123-4567", "(082) 123 4567", "+27 82 123 4567", "+27 (0)82 123 4567",
                                 "082.123.4567", " +27821234567 "])
def test_the_usual_ways_of_writing_a_number_still_parse(raw):
    assert parse_phone(raw, country="ZA", field="cellphone", mobile=True) == "+27821234567"


@given(st.sampled_from(["ext 12", "ext. 5", "x", "x12", ";ext=5", "#", "extension 7", "ext"]),
       st.sampled_from(["", " "]), st.sampled_from(["0821234567", "+27821234567", "+27-82-1234567", "082 123 4567"]))
def test_a_valid_number_with_any_extension_is_refused(suffix, gap, number):
    with pytest.raises(ValidationError) as err:
        parse_phone(f"{number}{gap}{suffix}", country="ZA", field="work_phone")
    assert list(err.value.error_dict) == ["work_phone"]


@given(st.text(min_size=1, max_size=4).filter(lambda s: any(c not in "0123456789 +-()." for c in f"0{s}".strip())))
def test_anything_but_digits_and_separators_after_a_number_is_refused(junk):
    # (Surrounding whitespace is trimmed, as in every other field.)
    with pytest.raises(ValidationError) as err:
        parse_phone(f"0821234567{junk}", country="ZA", field="cellphone")
    assert list(err.value.error_dict) == ["cellphone"]


def test_client_validation_refuses_an_extension_on_the_work_phone():
    from imali.clients.validation import clean_client_fields

    with pytest.raises(ValidationError) as err:
        clean_client_fields({"work_phone": "011 555 1234 ext 12", "cellphone": "+27821234567;ext=5"}, country="ZA")
    assert err.value.error_dict["work_phone"][0].code == "phone_extension"
    assert err.value.error_dict["cellphone"][0].code == "phone_extension"


@pytest.mark.parametrize(("country", "raw", "said"), [
    ("NA", "+27 82 555 1234", "'+27 82 555 1234' is a number in South Africa, not in Namibia: give a number in Namibia like "
                              "081 123 4567 or +264 81 123 4567."),
    ("BW", "+264 81 123 4567", "is a number in Namibia, not in Botswana: give a number in Botswana like 71 123 456 or "
                               "+267 71 123 456."),
    ("SZ", "+260 97 1234567", "is a number in Zambia, not in Eswatini"),
    ("ZM", "+268 7612 3456", "is a number in Eswatini, not in Zambia"),
    ("ZA", "+264811234567", "is a number in Namibia, not in South Africa: give a number in South Africa like 071 123 4567"),
])
def test_a_number_of_another_country_is_refused_in_words_with_an_example(country, raw, said):
    # Staff read country names and how to write the number, not "not a NA number (it reads as ZA)".
    with pytest.raises(ValidationError) as err:
        parse_phone(raw, country=country, field="cellphone", mobile=True)
    assert said in err.value.error_dict["cellphone"][0].message


def test_a_landline_is_refused_as_a_cellphone_of_that_country():
    with pytest.raises(ValidationError) as err:
        parse_phone("0211 234567", country="ZM", field="cellphone", mobile=True)
    assert err.value.error_dict["cellphone"][0].message == (
        "'0211 234567' is not a cellphone number in Zambia: give one like 095 5123456 or +260 95 5123456.")


@pytest.mark.parametrize(("country", "forms", "e164"), [
    ("NA", ["081 234 5678", "0812345678", "+264 81 234 5678", "264812345678", "00264812345678"], "+264812345678"),
    ("BW", ["71 234 567", "71234567", "+267 71 234 567", "26771234567"], "+26771234567"),
    ("SZ", ["7612 3456", "76123456", "+268 7612 3456", "26876123456"], "+26876123456"),
    ("ZM", ["097 1234567", "0971234567", "+260 97 1234567", "260971234567"], "+260971234567"),
])
def test_national_and_international_forms_of_each_countrys_cellphones(country, forms, e164):
    assert {parse_phone(raw, country=country, field="cellphone", mobile=True) for raw in forms} == {e164}


def test_an_accepted_number_is_not_given_a_how_to_write_it_hint(monkeypatch):
    # The hint ("like 081 123 4567 or ...") is for a refusal. Built for every number, it cost each
    # accepted one an example lookup and two formattings: about 110 of 190 µs, on the paths that parse
    # a number per message (a bulk send's queue, each SMPP MO's sender).
    def no_example(*args, **kwargs):
        raise AssertionError("an example number was looked up for an accepted number")

    monkeypatch.setattr(phonenumbers, "example_number_for_type", no_example)
    assert parse_phone("082 123 4567", country="ZA", field="cellphone", mobile=True) == "+27821234567"
    assert parse_phone("+264 81 123 4567", country="NA", field="cellphone", mobile=True) == "+264811234567"
