"""The countries Imali serves, and what follows from each: currency, time zone, dialling code."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class Country(models.TextChoices):
    ZA = "ZA", "South Africa"
    NA = "NA", "Namibia"
    BW = "BW", "Botswana"
    SZ = "SZ", "Eswatini"
    ZM = "ZM", "Zambia"


@dataclass(frozen=True)
class CountryFacts:
    currency: str
    time_zone: str
    dialling_code: int
    id_type_default: str


COUNTRY_FACTS: dict[str, CountryFacts] = {
    Country.ZA: CountryFacts("ZAR", "Africa/Johannesburg", 27, "sa_id"),
    Country.NA: CountryFacts("NAD", "Africa/Windhoek", 264, "national_id"),
    Country.BW: CountryFacts("BWP", "Africa/Gaborone", 267, "national_id"),
    Country.SZ: CountryFacts("SZL", "Africa/Mbabane", 268, "national_id"),
    Country.ZM: CountryFacts("ZMW", "Africa/Lusaka", 260, "national_id"),
}


# The payment stream (NAEDO and EFT promissory notes, DebiCheck mandates, the check-digit table of
# the banks' branch codes, Social Grant EFT) rides on South Africa's interbank system
# (BankservAfrica, PASA rules): a lender in another country has no such stream to reach, so its
# screens, rights and services are not offered there (DOMAIN §7 describes South Africa only).
PAYMENT_STREAM_COUNTRIES = frozenset({Country.ZA.value})


def payment_streams_offered(country: str) -> bool:
    return country in PAYMENT_STREAM_COUNTRIES


def country_name(country: str) -> str:
    """The country as people say it ("Namibia"), or the code itself when it is not one of ours."""
    return Country(country).label if country in Country.values else (country or "unknown")


def currency_for(country: str) -> str:
    return COUNTRY_FACTS[country].currency


def time_zone_for(country: str) -> str:
    return COUNTRY_FACTS[country].time_zone
