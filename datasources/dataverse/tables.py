"""The native Dataverse tables a new environment gets, described as table metadata.

They are published in the store's metadata tables the way the F&O store publishes
its entities, so the same generator can expose them. Lookups are held as the code of
the row they point at (`msdyn_company` = a `cdm_companycode`).
"""

from __future__ import annotations

from gateway.kernel.catalog import (
    Cardinality,
    EntityField,
    EntityMetadata,
    EnumMember,
    EnumType,
    FieldType,
    Operation,
    Relation,
)

ALL_OPERATIONS = frozenset(Operation)
STATE = EnumType("statecode", (EnumMember("Active", 0, "Active"), EnumMember("Inactive", 1)))


def text(name: str, length: int, label: str = "", *, required: bool = False) -> EntityField:
    return EntityField(name, FieldType.STRING, name, label or name, not required, length=length)


def row_id(name: str) -> EntityField:
    return EntityField(name, FieldType.STRING, name, "Row id", False, True, length=36)


def audit() -> tuple[EntityField, ...]:
    return (
        EntityField("modifiedon", FieldType.UTC_DATETIME, "modifiedon", "Modified on"),
        EntityField(
            "versionnumber", FieldType.INT64, "versionnumber", "Row version", read_only=True
        ),
    )


COMPANY = text("msdyn_company", 4, "Company")


def company_of() -> Relation:
    return Relation(
        "company",
        "cdm_company",
        Cardinality.ONE,
        (("msdyn_company", "cdm_companycode"),),
        "Company",
    )


def table(
    name: str, plural: str, label: str, *fields: EntityField, relations: tuple[Relation, ...] = ()
) -> EntityMetadata:
    return EntityMetadata(
        name=name,
        collection_name=plural,
        label=label,
        table=name,
        fields=(*fields, *audit()),
        relations=relations,
        operations=ALL_OPERATIONS,
    )


CDM_COMPANY = table(
    "cdm_company",
    "cdm_companies",
    "Companies",
    row_id("cdm_companyid"),
    text("cdm_companycode", 4, "Company code", required=True),
    text("cdm_name", 100, "Name"),
)
CUSTOMER_GROUP = table(
    "msdyn_customergroup",
    "msdyn_customergroups",
    "Customer groups",
    row_id("msdyn_customergroupid"),
    text("msdyn_groupid", 10, "Group", required=True),
    text("msdyn_description", 60, "Description"),
    COMPANY,
    relations=(company_of(),),
)
ACCOUNT = table(
    "account",
    "accounts",
    "Accounts",
    row_id("accountid"),
    text("accountnumber", 20, "Account number"),
    text("name", 160, "Account name", required=True),
    COMPANY,
    text("msdyn_customergroupid", 10, "Customer group"),
    EntityField(
        "creditlimit", FieldType.REAL, "creditlimit", "Credit limit", precision=32, scale=2
    ),
    text("address1_line1", 250, "Street"),
    text("address1_city", 80, "City"),
    text("address1_postalcode", 20, "ZIP/postal code"),
    text("address1_country", 80, "Country/region"),
    text("address2_line1", 250, "Bill-to street"),
    text("address2_city", 80, "Bill-to city"),
    text("address2_postalcode", 20, "Bill-to ZIP/postal code"),
    text("address2_country", 80, "Bill-to country/region"),
    text("telephone1", 50, "Phone"),
    text("emailaddress1", 100, "Email"),
    EntityField("statecode", FieldType.ENUM, "statecode", "Status", False, enum=STATE),
    relations=(company_of(),),
)
CONTACT = table(
    "contact",
    "contacts",
    "Contacts",
    row_id("contactid"),
    text("firstname", 50, "First name"),
    text("lastname", 50, "Last name", required=True),
    text("msdyn_contactpersonid", 20, "Contact person ID"),
    text("emailaddress1", 100, "Email"),
    EntityField(
        "parentcustomerid", FieldType.STRING, "parentcustomerid", "Company name", length=36
    ),
    COMPANY,
    relations=(
        Relation(
            "account", "account", Cardinality.ONE, (("parentcustomerid", "accountid"),), "Account"
        ),
    ),
)
PRODUCT = table(
    "product",
    "products",
    "Products",
    row_id("productid"),
    text("productnumber", 20, "Product number", required=True),
    text("name", 100, "Name", required=True),
    text("description", 500, "Description"),
    COMPANY,
)
SALES_ORDER = table(
    "salesorder",
    "salesorders",
    "Orders",
    row_id("salesorderid"),
    text("ordernumber", 20, "Order number", required=True),
    text("name", 300, "Name"),
    EntityField("customerid", FieldType.STRING, "customerid", "Customer", length=36),
    COMPANY,
    EntityField(
        "totalamount", FieldType.REAL, "totalamount", "Total amount", precision=32, scale=2
    ),
    EntityField("requestdeliveryby", FieldType.DATE, "requestdeliveryby", "Requested delivery"),
    EntityField("statecode", FieldType.ENUM, "statecode", "Status", False, enum=STATE),
    relations=(
        company_of(),
        # customerid is polymorphic: it names an account or a contact
        Relation(
            "customer", "account", Cardinality.ONE, (("customerid", "accountid"),), "Customer"
        ),
        Relation(
            "customer_contact",
            "contact",
            Cardinality.ONE,
            (("customerid", "contactid"),),
            "Customer (contact)",
        ),
    ),
)

NATIVE_TABLES = (CDM_COMPANY, CUSTOMER_GROUP, ACCOUNT, CONTACT, PRODUCT, SALES_ORDER)

ALTERNATE_KEYS: dict[str, tuple[str, ...]] = {
    "cdm_company": ("cdm_companycode",),
    "msdyn_customergroup": ("msdyn_company", "msdyn_groupid"),
    "account": ("msdyn_company", "accountnumber"),
    "contact": ("msdyn_company", "msdyn_contactpersonid"),
    "product": ("msdyn_company", "productnumber"),
    "salesorder": ("msdyn_company", "ordernumber"),
}
"""Each table's alternate key: what dual-write finds a row by (its row id is Dataverse's
own), held unique by an index, as Dataverse requires of a dual-write table."""
