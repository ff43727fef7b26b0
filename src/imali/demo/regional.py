"""Regional word lists for generated books: names, places, employers, banks, wallets.

Written for Imali, kept small and plain-ASCII so that e-mail addresses and SMS text built from
them stay GSM-7 and valid. Phone prefixes are the ones `phonenumbers` accepts for every suffix
(tests/demo check a sample); the figures are for demonstration and load testing only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Town:
    name: str
    # National fixed-line digits that start every landline of the town (E.164 without the country code).
    landline_prefix: str
    postal_code: str
    areas: tuple[str, ...]


@dataclass(frozen=True)
class CountryBook:
    dialling_code: str
    # Mobile prefixes (national digits) and the national length of a mobile number.
    mobile_prefixes: tuple[str, ...]
    mobile_length: int
    landline_length: int
    regions: dict[str, tuple[Town, ...]]
    male_names: tuple[str, ...]
    female_names: tuple[str, ...]
    surnames: tuple[str, ...]
    # (bank name, branch code, account number prefix, account number length)
    banks: tuple[tuple[str, str, str, int], ...]
    wallets: tuple[str, ...]
    # Share of clients (per mille) that also hold a mobile wallet.
    wallet_per_mille: int
    # Salaries are drawn in ZAR-like bands and scaled by this factor into the local currency.
    salary_factor: float
    email_domains: tuple[str, ...]


_SA_MALE = (
    "Thabo", "Sipho", "Themba", "Bongani", "Mandla", "Sibusiso", "Tshepo", "Lwazi", "Kagiso", "Lebo",
    "Neo", "Tumelo", "Mpho", "Katlego", "Andile", "Lungile", "Siyabonga", "Nkosinathi", "Musa", "Vusi",
    "Johannes", "Pieter", "Jacobus", "Willem", "Hendrik", "Riaan", "Francois", "Johan", "Gerhard",
    "Stefan", "Ahmed", "Yusuf", "Mohammed", "Rajesh", "Pravin", "Kevin", "Craig", "Brandon", "Jason",
    "Wayne", "Ashwin", "Tebogo", "Kabelo", "Lesego", "Karabo", "Xolani", "Zola", "Luthando", "Mzwandile",
    "Sizwe",
)
_SA_FEMALE = (
    "Nomsa", "Thandi", "Zanele", "Lindiwe", "Nokuthula", "Palesa", "Naledi", "Dineo", "Lerato", "Boitumelo",
    "Refilwe", "Ayanda", "Busisiwe", "Nompumelelo", "Zodwa", "Khanyisile", "Precious", "Patience",
    "Gugu", "Sibongile", "Anelisa", "Nandi", "Mbali", "Nthabiseng", "Masego", "Tshegofatso", "Keabetswe",
    "Annatjie", "Marietjie", "Elmarie", "Charlene", "Michelle", "Nicole", "Fatima", "Ayesha", "Priya",
    "Kavitha", "Sharon", "Deborah", "Elizabeth", "Maria", "Johanna", "Sarah", "Grace", "Faith", "Mercy",
    "Zinhle", "Nosipho", "Ntombi", "Yolanda",
)
_SA_SURNAMES = (
    "Dlamini", "Nkosi", "Ndlovu", "Khumalo", "Mokoena", "Mahlangu", "Sithole", "Mthembu", "Zulu", "Ngcobo",
    "Buthelezi", "Mkhize", "Radebe", "Molefe", "Mabaso", "Shabalala", "Hlongwane", "Zwane", "Cele", "Ntuli",
    "Nel", "Botha", "van der Merwe", "Pretorius", "Venter", "Smit", "du Plessis", "Coetzee", "Fourie",
    "Jacobs", "Naidoo", "Pillay", "Govender", "Moodley", "Reddy", "Chetty", "Adams", "Petersen",
    "Williams", "Isaacs", "Maluleke", "Baloyi", "Mathebula", "Chauke", "Ramaphosa", "Masilela", "Maseko",
    "Tshabalala", "Moloi", "Motaung", "Letsoalo", "Mashaba", "Makhubela", "Sibiya", "Mazibuko",
    "Gumede", "Mnguni", "Xaba", "Ngubane", "Mofokeng",
)

_NA_MALE = (
    "Johannes", "Petrus", "Festus", "Immanuel", "Tangeni", "Ndapewa", "Shikongo", "Tuhafeni", "Elago",
    "Matheus", "Simon", "Kapenda", "Hafeni", "Ndeshipanda", "Sakaria", "Gideon", "Fillemon", "Josua",
    "Paulus", "Andreas", "Hendrik", "Lazarus", "Rauna", "Selma", "Tomas", "David", "Moses", "Abisai",
    "Kaarlo", "Erastus",
)
_NA_FEMALE = (
    "Ndinelao", "Ndapandula", "Ndeshihafela", "Hilma", "Martha", "Aina", "Loide", "Saima", "Emilia",
    "Frieda", "Justina", "Hileni", "Magano", "Twapewa", "Maria", "Anna", "Ester", "Victoria", "Selma",
    "Rauna", "Beata", "Penehafo", "Ndahafa", "Albertina", "Wilhelmina", "Josephine", "Johanna", "Elina",
    "Naemi", "Lahja",
)
_NA_SURNAMES = (
    "Shikongo", "Nghipondoka", "Amutenya", "Haufiku", "Shilongo", "Nangolo", "Iipumbu", "Kambonde",
    "Namupala", "Shipanga", "Amukoto", "Hango", "Nakale", "Kandjii", "Tjiriange", "Kazondu", "Karuaihe",
    "Gurirab", "Garoeb", "Nujoma", "Hamutenya", "Ekandjo", "Angula", "Mbumba", "Kapofi", "van Wyk",
    "Beukes", "Swartbooi", "Isaacs", "Afrikaner",
)

_BW_MALE = (
    "Kagiso", "Mpho", "Thato", "Tebogo", "Kabo", "Onkemetse", "Oratile", "Kgosi", "Lesego", "Tumelo",
    "Boitumelo", "Goitseone", "Kealeboga", "Thabo", "Mothusi", "Gaone", "Masego", "Bonolo", "Kgomotso",
    "Oteng", "Keletso", "Phenyo", "Tshepo", "Otsile", "Moagi", "Pako", "Mogomotsi", "Onalenna",
    "Refilwe", "Letlhogonolo",
)
_BW_FEMALE = (
    "Boitumelo", "Kelebogile", "Masego", "Onalenna", "Gaone", "Neo", "Tshegofatso", "Lorato", "Kefilwe",
    "Mpho", "Dineo", "Kgalalelo", "Naledi", "Bonang", "Kedibone", "Keitumetse", "Amantle", "Mmoloki",
    "Goitsemang", "Tebogo", "Lesedi", "Oarabile", "Tlotlo", "Wame", "Kago", "Omphile", "Oratile",
    "Thapelo", "Segametsi", "Mompati",
)
_BW_SURNAMES = (
    "Mogae", "Khama", "Masire", "Molefhe", "Seretse", "Kgosi", "Moloi", "Ramotswe", "Mokgweetsi",
    "Motsumi", "Sebego", "Tau", "Modise", "Ntshole", "Phiri", "Gaolathe", "Mmolawa", "Kebonang",
    "Mooketsi", "Letsholo", "Rammala", "Mothibi", "Tshekedi", "Motlhabane", "Kgari", "Pilane",
    "Sechele", "Dintwe", "Mosweu", "Ookeditse",
)

_SZ_MALE = (
    "Sibusiso", "Mandla", "Bongani", "Sandile", "Themba", "Mfanzile", "Sifiso", "Musa", "Mduduzi",
    "Sabelo", "Lwazi", "Nkosinathi", "Phiwa", "Siboniso", "Mcolisi", "Vusi", "Mbuso", "Sipho", "Zweli",
    "Bheki", "Mthunzi", "Lindani", "Melusi", "Sakhile", "Nhlanhla", "Wandile", "Zwelethu", "Bhekisisa",
    "Sanele", "Celani",
)
_SZ_FEMALE = (
    "Nomcebo", "Thandeka", "Lindiwe", "Nonhlanhla", "Siphiwe", "Zandile", "Phindile", "Nombuso",
    "Tenele", "Lungile", "Ntombifuthi", "Sibongile", "Nosipho", "Cebile", "Gcebile", "Hlobsile",
    "Khanyisile", "Makhosazana", "Nelisiwe", "Ncobile", "Sindisiwe", "Thembelihle", "Nokuthula",
    "Nomsa", "Zanele", "Buhle", "Fikile", "Bongiwe", "Lomakhosi", "Simangele",
)
_SZ_SURNAMES = (
    "Dlamini", "Simelane", "Shongwe", "Mamba", "Nxumalo", "Mdluli", "Magagula", "Hlophe", "Kunene",
    "Motsa", "Mavuso", "Zwane", "Gamedze", "Masilela", "Khumalo", "Matsebula", "Fakudze", "Ginindza",
    "Tsabedze", "Mkhonta", "Vilakati", "Sihlongonyane", "Maziya", "Nhlengethwa", "Ndzimandze",
    "Thwala", "Lukhele", "Msibi", "Mabuza", "Maseko",
)

_ZM_MALE = (
    "Mwila", "Chanda", "Mulenga", "Bwalya", "Musonda", "Kabwe", "Chileshe", "Mutale", "Kunda", "Lubinda",
    "Mwansa", "Chola", "Mubanga", "Kapembwa", "Lungu", "Moses", "Joseph", "Emmanuel", "Patrick", "Gift",
    "Brian", "Kelvin", "Mapalo", "Chipo", "Nkandu", "Luka", "Mwamba", "Kasonde", "Chisanga", "Kalaba",
)
_ZM_FEMALE = (
    "Mwape", "Natasha", "Chilufya", "Mutinta", "Namukolo", "Bupe", "Chipo", "Mapalo", "Thandiwe",
    "Mwaka", "Chisomo", "Mulenga", "Memory", "Precious", "Esther", "Ruth", "Mirriam", "Loveness",
    "Mercy", "Beatrice", "Nchimunya", "Monde", "Inonge", "Kabwe", "Lweendo", "Musonda", "Towela",
    "Chanda", "Mwila", "Grace",
)
_ZM_SURNAMES = (
    "Banda", "Phiri", "Mwale", "Tembo", "Zulu", "Mulenga", "Bwalya", "Chanda", "Lungu", "Mumba",
    "Sakala", "Daka", "Ngoma", "Mwanza", "Kaunda", "Chilufya", "Musonda", "Kabwe", "Mutale", "Hamainza",
    "Hichilema", "Siame", "Simukonda", "Chisenga", "Kasonde", "Nkhoma", "Mbewe", "Zimba", "Chirwa",
    "Nyirenda",
)

_ZA_REGIONS = {
    "Gauteng": (
        Town("Johannesburg", "11", "2001", ("Soweto", "Alexandra", "Randburg", "Roodepoort", "Diepkloof")),
        Town("Pretoria", "12", "0002", ("Mamelodi", "Atteridgeville", "Soshanguve", "Centurion", "Arcadia")),
        Town("Vereeniging", "16", "1930", ("Sebokeng", "Sharpeville", "Evaton", "Three Rivers")),
    ),
    "KwaZulu-Natal": (
        Town("Durban", "31", "4001", ("Umlazi", "KwaMashu", "Chatsworth", "Pinetown", "Phoenix")),
        Town("Pietermaritzburg", "33", "3201", ("Edendale", "Imbali", "Northdale", "Scottsville")),
        Town("Richards Bay", "35", "3900", ("Esikhawini", "Meerensee", "Brackenham", "Arboretum")),
    ),
    "Western Cape": (
        Town("Cape Town", "21", "8001", ("Khayelitsha", "Mitchells Plain", "Gugulethu", "Bellville", "Athlone")),
        Town("George", "44", "6530", ("Thembalethu", "Pacaltsdorp", "Blanco", "Conville")),
    ),
    "Eastern Cape": (
        Town("Gqeberha", "41", "6001", ("Motherwell", "New Brighton", "KwaZakhele", "Walmer")),
        Town("East London", "43", "5201", ("Mdantsane", "Duncan Village", "Beacon Bay", "Southernwood")),
    ),
    "Limpopo": (
        Town("Polokwane", "15", "0699", ("Seshego", "Mankweng", "Bendor", "Westenburg")),
    ),
    "Free State": (
        Town("Bloemfontein", "51", "9301", ("Mangaung", "Botshabelo", "Heidedal", "Bayswater")),
        Town("Welkom", "57", "9459", ("Thabong", "Bronville", "Riebeeckstad")),
    ),
    "Mpumalanga": (
        Town("Mbombela", "13", "1200", ("KaNyamazane", "Matsulu", "Sonheuwel", "West Acres")),
    ),
    "North West": (
        Town("Rustenburg", "14", "0299", ("Boitekong", "Tlhabane", "Meriting", "Cashan")),
    ),
}
_NA_REGIONS = {
    "Khomas": (Town("Windhoek", "6122", "9000", ("Katutura", "Khomasdal", "Wanaheda", "Otjomuise", "Eros")),),
    "Erongo": (Town("Swakopmund", "6441", "9000", ("Mondesa", "Tamariskia", "Vineta", "Kramersdorf")),),
    "Oshana": (Town("Oshakati", "6522", "9000", ("Oshakati East", "Oshakati West", "Evululuko", "Ehenye")),),
    "Karas": (Town("Keetmanshoop", "6322", "9000", ("Kronlein", "Tseiblaagte", "Westdene")),),
    "Otjozondjupa": (Town("Otjiwarongo", "6722", "9000", ("Orwetoveni", "Tuindorp", "Hochland")),),
    "Kavango East": (Town("Rundu", "6626", "9000", ("Kaisosi", "Sauyemwa", "Kehemu", "Nkarapamwe")),),
}
_BW_REGIONS = {
    "South-East": (Town("Gaborone", "39", "", ("Old Naledi", "Broadhurst", "Block 8", "Tlokweng", "Extension 12")),),
    "North-East": (Town("Francistown", "24", "", ("Somerset", "Monarch", "Gerald Estate", "Area W")),),
    "Central": (
        Town("Palapye", "49", "", ("Lotsane", "Extension 5", "Madiba")),
        Town("Serowe", "46", "", ("Botalaote", "Mannonnye", "Sebele")),
    ),
    "Kweneng": (Town("Molepolole", "59", "", ("Borakalalo", "Ntloolengwae", "Mokgalo")),),
}
_SZ_REGIONS = {
    "Hhohho": (Town("Mbabane", "240", "H100", ("Msunduza", "Sidwashini", "Mbangweni", "Fonteyn")),),
    "Manzini": (
        Town("Manzini", "250", "M200", ("Ngwane Park", "Fairview", "Zakhele", "Coates Valley")),
        Town("Matsapha", "251", "M202", ("Logoba", "Kwaluseni", "Mhobodleni")),
    ),
    "Lubombo": (Town("Siteki", "234", "L300", ("Mafutseni", "Mlindazwe", "Maphungwane")),),
    "Shiselweni": (Town("Nhlangano", "220", "S400", ("Zombodze", "Mbangweni", "Kwaluseni")),),
}
_ZM_REGIONS = {
    "Lusaka": (Town("Lusaka", "211", "10101", ("Kabwata", "Matero", "Chilenje", "Kalingalinga", "Chawama")),),
    "Copperbelt": (
        Town("Ndola", "212", "10101", ("Kansenshi", "Masala", "Chifubu", "Twapia")),
        Town("Kitwe", "212", "10101", ("Nkana East", "Chimwemwe", "Parklands", "Buchi")),
    ),
    "Southern": (Town("Livingstone", "213", "20101", ("Dambwa", "Maramba", "Libuyu", "Linda")),),
    "Central": (Town("Kabwe", "215", "80101", ("Makandanyama", "Bwacha", "Chowa", "Katondo")),),
    "Eastern": (Town("Chipata", "216", "51101", ("Kapata", "Magazine", "Moth", "Dilika")),),
}

STREETS = (
    "Church", "Main", "Station", "Market", "Nelson Mandela", "Oliver Tambo", "Independence", "Hospital",
    "School", "Mission", "Freedom", "Unity", "Msasa", "Mopane", "Baobab", "Jacaranda", "Protea", "Acacia",
    "Kudu", "Impala", "Eland", "Sunbird", "River", "Hill", "Park", "Victoria", "King George", "Queen",
    "Long", "Short",
)
STREET_KINDS = ("Street", "Street", "Road", "Avenue", "Drive", "Crescent", "Lane")

# Universal branch codes of the South African banks (DOMAIN §7). Account numbers have each bank's
# usual length and leading digits; their check digits are not computed, because the CDV table is
# not public (DOMAIN §7) — loads that need CDV-valid numbers must load the sponsoring bank's table.
_ZA_BANKS = (
    ("Capitec", "470010", "1", 10),
    ("Capitec", "470010", "1", 10),
    ("FNB", "250655", "62", 11),
    ("ABSA", "632005", "40", 10),
    ("Standard Bank", "051001", "0", 9),
    ("Standard Bank", "051001", "10", 11),
    ("Nedbank", "198765", "1", 10),
)
# Outside South Africa the branch codes below are demonstration values, not the banks' real codes.
_NA_BANKS = (
    ("Bank Windhoek", "480172", "80", 10),
    ("FNB Namibia", "280172", "62", 11),
    ("Standard Bank Namibia", "087373", "04", 11),
    ("Nedbank Namibia", "461038", "11", 10),
)
_BW_BANKS = (
    ("First National Bank Botswana", "281467", "62", 11),
    ("Absa Bank Botswana", "290267", "10", 10),
    ("Stanbic Bank Botswana", "064967", "90", 13),
)
_SZ_BANKS = (
    ("First National Bank Eswatini", "280164", "62", 11),
    ("Standard Bank Eswatini", "663164", "91", 12),
    ("Nedbank Eswatini", "360564", "02", 11),
)
_ZM_BANKS = (
    ("Zanaco", "010002", "00", 13),
    ("Stanbic Bank Zambia", "040001", "91", 13),
    ("Absa Bank Zambia", "020001", "01", 10),
    ("FNB Zambia", "260001", "62", 11),
)

COUNTRY_BOOKS: dict[str, CountryBook] = {
    "ZA": CountryBook(
        "27", ("60", "61", "62", "63", "64", "65", "66", "67", "68", "71", "72", "73", "74", "76", "78",
               "79", "81", "82", "83", "84"), 9, 9, _ZA_REGIONS, _SA_MALE, _SA_FEMALE, _SA_SURNAMES,
        _ZA_BANKS, ("FNB eWallet", "Capitec Pay", "MTN MoMo"), 80, 1.0,
        ("gmail.com", "yahoo.com", "outlook.com", "webmail.co.za", "mweb.co.za", "icloud.com"),
    ),
    "NA": CountryBook(
        "264", ("81", "85"), 9, 9, _NA_REGIONS, _NA_MALE, _NA_FEMALE, _NA_SURNAMES,
        _NA_BANKS, ("MTC Maris", "FNB eWallet", "BlueWallet"), 300, 1.0,
        ("gmail.com", "yahoo.com", "iway.na", "outlook.com"),
    ),
    "BW": CountryBook(
        "267", ("71", "72", "73", "74", "75", "76", "77"), 8, 7, _BW_REGIONS, _BW_MALE, _BW_FEMALE,
        _BW_SURNAMES, _BW_BANKS, ("Orange Money", "MyZaka", "Smega"), 450, 0.75,
        ("gmail.com", "yahoo.com", "outlook.com", "botsnet.bw"),
    ),
    "SZ": CountryBook(
        "268", ("76", "78", "79"), 8, 8, _SZ_REGIONS, _SZ_MALE, _SZ_FEMALE, _SZ_SURNAMES,
        _SZ_BANKS, ("MTN MoMo", "eMali"), 400, 1.0,
        ("gmail.com", "yahoo.com", "realnet.co.sz", "outlook.com"),
    ),
    "ZM": CountryBook(
        "260", ("95", "96", "97", "76", "77"), 9, 9, _ZM_REGIONS, _ZM_MALE, _ZM_FEMALE, _ZM_SURNAMES,
        _ZM_BANKS, ("Airtel Money", "MTN MoMo", "Zamtel Kwacha"), 550, 1.3,
        ("gmail.com", "yahoo.com", "zamnet.zm", "outlook.com"),
    ),
}

# Lender names: a trading name plus a suffix, per country, so generated entities look like lenders.
LENDER_NAMES = (
    "Lesedi", "Kgotso", "Imbali", "Thuso", "Vukani", "Tsela", "Khanya", "Ithemba", "Pula", "Omba",
    "Nala", "Simama", "Tumelo", "Kuvuka", "Zenzele", "Bophelo",
)
LENDER_SUFFIXES = ("Micro Finance", "Cash Loans", "Finance", "Credit", "Lending Services")

# (name pattern, classification, economic sector, paypoint count, occupations)
# "{town}" and "{region}" are filled from the entity's places.
EMPLOYER_TEMPLATES: dict[str, tuple[tuple[str, str, str, int, tuple[str, ...]], ...]] = {
    "common": (
        ("Department of Education {region}", "government", "government", 4,
         ("Teacher", "Principal", "Administrative clerk", "Cleaner", "Deputy principal")),
        ("Department of Health {region}", "government", "government", 3,
         ("Professional nurse", "Enrolled nurse", "Porter", "Clerk", "Pharmacist assistant")),
        ("Police Service {region}", "government", "government", 2,
         ("Constable", "Sergeant", "Warrant officer", "Administrative clerk")),
        ("Correctional Services {region}", "government", "government", 1, ("Correctional officer", "Clerk")),
        ("{town} Municipality", "government", "government", 2,
         ("General worker", "Meter reader", "Clerk", "Electrician", "Traffic officer")),
        ("{town} Power Utility", "parastatal", "utilities", 1, ("Technician", "Electrician", "Clerk")),
        ("National Railways {region}", "parastatal", "transport", 1, ("Train driver", "Signaller", "Artisan")),
        ("Shoprite {town}", "private", "trade", 2, ("Cashier", "Shelf packer", "Supervisor", "Butcher")),
        ("Pick n Pay {town}", "private", "trade", 1, ("Cashier", "Merchandiser", "Baker")),
        ("Pep Stores {town}", "private", "trade", 1, ("Sales assistant", "Store manager")),
        ("{town} Security Services", "private", "community", 1, ("Security guard", "Supervisor")),
        ("{town} Taxi Association", "informal", "transport", 1, ("Taxi driver", "Marshal")),
        ("{region} Farmers Cooperative", "private", "agriculture", 2, ("Farm worker", "Tractor driver", "Foreman")),
        ("{town} Construction", "private", "construction", 1, ("Bricklayer", "Labourer", "Plumber", "Carpenter")),
        ("{town} Cleaning Services", "private", "community", 1, ("Cleaner", "Supervisor")),
        ("Self-employed {town}", "informal", "trade", 1, ("Hawker", "Hairdresser", "Tailor", "Spaza owner")),
        ("Government Pension Fund", "pension", "finance", 1, ("Pensioner",)),
    ),
    "ZA": (
        ("SASSA {region}", "social_grant", "government", 2, ("Grant recipient",)),
        ("Anglo American Platinum", "mining", "mining", 2, ("Rock drill operator", "Miner", "Winch driver", "Artisan")),
        ("Sibanye-Stillwater", "mining", "mining", 2, ("Miner", "Shift boss", "Loco driver")),
        ("Transnet {region}", "parastatal", "transport", 1, ("Train driver", "Artisan", "Clerk")),
    ),
    "NA": (
        ("Namdeb Diamond Corporation", "mining", "mining", 1, ("Plant operator", "Miner", "Fitter")),
        ("NamPower", "parastatal", "utilities", 1, ("Technician", "Linesman")),
    ),
    "BW": (
        ("Debswana Diamond Company", "mining", "mining", 2, ("Plant operator", "Haul truck driver", "Fitter")),
        ("Botswana Defence Force", "government", "government", 1, ("Private", "Corporal", "Sergeant")),
    ),
    "SZ": (
        ("Royal Eswatini Sugar Corporation", "private", "agriculture", 2, ("Cane cutter", "Mill operator", "Clerk")),
        ("Eswatini Electricity Company", "parastatal", "utilities", 1, ("Technician", "Linesman")),
    ),
    "ZM": (
        ("Konkola Copper Mines", "mining", "mining", 2, ("Miner", "Smelter operator", "Fitter")),
        ("Zambia Sugar", "private", "agriculture", 1, ("Cane cutter", "Mill operator")),
        ("ZESCO", "parastatal", "utilities", 1, ("Technician", "Linesman")),
    ),
}

NOTES = (
    "Prefers SMS to calls.",
    "Works night shift: call after 14:00.",
    "Referred by an existing client.",
    "Asked about a loan for school fees.",
    "Payslip copy on file.",
    "Moved from another branch.",
)
