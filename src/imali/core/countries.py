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


def currency_for(country: str) -> str:
    return COUNTRY_FACTS[country].currency


def time_zone_for(country: str) -> str:
    return COUNTRY_FACTS[country].time_zone
