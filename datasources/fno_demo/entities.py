"""The data entities the demo store publishes, defined as F&O metadata (not as code paths).

Names follow F&O's OData: public name `CustomerV3`, collection `CustomersV3`,
fields as F&O spells them. Columns are the field names in lower case, as an F&O
database would hold them (upper case there).
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


def enum(name: str, *symbols: str) -> EnumType:
    return EnumType(name, tuple(EnumMember(s, i, s) for i, s in enumerate(symbols)))


NO_YES = enum("NoYes", "No", "Yes")
CUST_VEND_BLOCKED = enum(
    "CustVendorBlocked", "No", "Invoice", "All", "Payment", "Requisition", "Never"
)
PARTY_TYPE = enum("DirPartyBaseType", "None", "Person", "Organization")
SALES_STATUS = enum("SalesStatus", "None", "Backorder", "Delivered", "Invoiced", "Canceled")
PRODUCT_TYPE = enum("EcoResProductType", "Item", "Service")


def string(
    name: str, length: int, label: str = "", *, is_key: bool = False, nullable: bool = True
) -> EntityField:
    return EntityField(
        name, FieldType.STRING, name.lower(), label or name, nullable, is_key, length=length
    )


def amount(name: str, label: str = "", scale: int = 2) -> EntityField:
    return EntityField(name, FieldType.REAL, name.lower(), label or name, precision=32, scale=scale)


def of_enum(name: str, kind: EnumType, label: str = "") -> EntityField:
    return EntityField(name, FieldType.ENUM, name.lower(), label or name, nullable=False, enum=kind)


def typed(name: str, kind: FieldType, label: str = "") -> EntityField:
    return EntityField(name, kind, name.lower(), label or name)


COMPANY = string("dataAreaId", 4, "Company", is_key=True, nullable=False)
VERSION = EntityField(
    "RecVersion", FieldType.INT, "recversion", "Row version", nullable=False, read_only=True
)
"""F&O's row version: 1 when a row is created, one more on every update."""


def key(name: str, length: int, label: str = "") -> EntityField:
    return string(name, length, label, is_key=True, nullable=False)


def to_one(name: str, target: str, *pairs: tuple[str, str]) -> Relation:
    return Relation(name, target, Cardinality.ONE, (("dataAreaId", "dataAreaId"), *pairs), name)


def to_many(name: str, target: str, *pairs: tuple[str, str]) -> Relation:
    return Relation(name, target, Cardinality.MANY, (("dataAreaId", "dataAreaId"), *pairs), name)


LEGAL_ENTITY = EntityMetadata(
    name="LegalEntity",
    collection_name="LegalEntities",
    label="Legal entities",
    table="companyinfoentity",
    fields=(
        key("LegalEntityId", 4, "Company"),
        string("Name", 100),
        string("AddressCountryRegionId", 10, "Country/region"),
        string("AddressCity", 60, "City"),
        string("AccountingCurrency", 3, "Accounting currency"),
        string("LanguageId", 7, "Language"),
        VERSION,
    ),
    operations=ALL_OPERATIONS,
    auto_create=True,
)

CUSTOMER_GROUP = EntityMetadata(
    name="CustomerGroup",
    collection_name="CustomerGroups",
    label="Customer groups",
    table="custcustomergroupentity",
    fields=(
        COMPANY,
        key("CustomerGroupId", 10, "Customer group"),
        string("Description", 60),
        string("PaymentTermId", 10, "Terms of payment"),
        of_enum("IsSalesTaxIncludedInPrice", NO_YES, "Prices include sales tax"),
        VERSION,
    ),
    relations=(to_many("Customers", "CustomerV3", ("CustomerGroupId", "CustomerGroupId")),),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
    auto_create=True,
)

CUSTOMER = EntityMetadata(
    name="CustomerV3",
    collection_name="CustomersV3",
    label="Customers V3",
    table="custcustomerv3entity",
    fields=(
        COMPANY,
        key("CustomerAccount", 20, "Customer account"),
        string("OrganizationName", 100, "Organization name"),
        of_enum("PartyType", PARTY_TYPE, "Party type"),
        string("CustomerGroupId", 10, "Customer group", nullable=False),
        amount("CreditLimit", "Credit limit"),
        of_enum("CreditLimitIsMandatory", NO_YES, "Mandatory credit limit"),
        string("SalesCurrencyCode", 3, "Currency", nullable=False),
        of_enum("OnHoldStatus", CUST_VEND_BLOCKED, "Invoice and delivery on hold"),
        string("PaymentTerms", 10, "Terms of payment"),
        string("LanguageId", 7, "Language"),
        string("DeliveryAddressStreet", 250, "Delivery street"),
        string("DeliveryAddressCity", 60, "Delivery city"),
        string("DeliveryAddressZipCode", 10, "Delivery ZIP/postal code"),
        string("DeliveryAddressState", 10, "Delivery state"),
        string("DeliveryAddressCountryRegionId", 10, "Delivery country/region"),
        string("InvoiceAddressStreet", 250, "Invoice street"),
        string("InvoiceAddressCity", 60, "Invoice city"),
        string("InvoiceAddressZipCode", 10, "Invoice ZIP/postal code"),
        string("InvoiceAddressState", 10, "Invoice state"),
        string("InvoiceAddressCountryRegionId", 10, "Invoice country/region"),
        string("PrimaryContactEmail", 255, "Primary email"),
        string("PrimaryContactPhone", 255, "Primary phone"),
        typed("CreatedDateTime", FieldType.UTC_DATETIME, "Created date and time"),
        VERSION,
    ),
    relations=(
        to_one("CustomerGroup", "CustomerGroup", ("CustomerGroupId", "CustomerGroupId")),
        to_many(
            "SalesOrders",
            "SalesOrderHeaderV2",
            ("CustomerAccount", "OrderingCustomerAccountNumber"),
        ),
    ),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
    auto_create=True,
)

VENDOR = EntityMetadata(
    name="VendorV2",
    collection_name="VendorsV2",
    label="Vendors V2",
    table="vendvendorv2entity",
    fields=(
        COMPANY,
        key("VendorAccountNumber", 20, "Vendor account"),
        string("VendorOrganizationName", 100, "Vendor name"),
        string("VendorGroupId", 10, "Vendor group", nullable=False),
        string("CurrencyCode", 3, "Currency", nullable=False),
        of_enum("OnHoldStatus", CUST_VEND_BLOCKED, "Vendor hold"),
        string("AddressCity", 60, "City"),
        string("AddressCountryRegionId", 10, "Country/region"),
        string("PrimaryEmailAddress", 255, "Primary email"),
        VERSION,
    ),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
    auto_create=True,
)

RELEASED_PRODUCT = EntityMetadata(
    name="ReleasedProductV2",
    collection_name="ReleasedProductsV2",
    label="Released products V2",
    table="ecoresreleasedproductv2entity",
    fields=(
        COMPANY,
        key("ItemNumber", 20, "Item number"),
        string("ProductName", 60, "Product name"),
        string("SearchName", 60, "Search name"),
        of_enum("ProductType", PRODUCT_TYPE, "Product type"),
        string("ItemModelGroupId", 10, "Item model group"),
        string("SalesUnitSymbol", 10, "Sales unit"),
        amount("SalesPrice", "Sales price"),
        VERSION,
    ),
    relations=(to_many("SalesOrderLines", "SalesOrderLine", ("ItemNumber", "ItemNumber")),),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
    auto_create=True,
)

SALES_ORDER_HEADER = EntityMetadata(
    name="SalesOrderHeaderV2",
    collection_name="SalesOrderHeadersV2",
    label="Sales order headers V2",
    table="salessalesorderheaderv2entity",
    fields=(
        COMPANY,
        key("SalesOrderNumber", 20, "Sales order"),
        string("OrderingCustomerAccountNumber", 20, "Customer account", nullable=False),
        string("InvoiceCustomerAccountNumber", 20, "Invoice account"),
        string("SalesOrderName", 100, "Name"),
        string("CurrencyCode", 3, "Currency", nullable=False),
        of_enum("SalesOrderStatus", SALES_STATUS, "Status"),
        string("CustomerRequisitionNumber", 20, "Customer requisition"),
        typed("RequestedShippingDate", FieldType.DATE, "Requested ship date"),
        typed("OrderCreationDateTime", FieldType.UTC_DATETIME, "Created date and time"),
        string("DeliveryAddressCity", 60, "Delivery city"),
        string("DeliveryAddressCountryRegionId", 10, "Delivery country/region"),
        VERSION,
    ),
    relations=(
        to_one("Customer", "CustomerV3", ("OrderingCustomerAccountNumber", "CustomerAccount")),
        to_many("Lines", "SalesOrderLine", ("SalesOrderNumber", "SalesOrderNumber")),
    ),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
    auto_create=True,
)

SALES_ORDER_LINE = EntityMetadata(
    name="SalesOrderLine",
    collection_name="SalesOrderLines",
    label="Sales order lines",
    table="salessalesorderlinev2entity",
    fields=(
        COMPANY,
        key("InventoryLotId", 20, "Lot ID"),
        string("SalesOrderNumber", 20, "Sales order", nullable=False),
        amount("LineNumber", "Line number", scale=4),
        string("ItemNumber", 20, "Item number", nullable=False),
        string("LineDescription", 1000, "Text"),
        amount("OrderedSalesQuantity", "Quantity", scale=4),
        string("SalesUnitSymbol", 10, "Unit"),
        amount("SalesPrice", "Unit price"),
        amount("LineAmount", "Net amount"),
        typed("RequestedShippingDate", FieldType.DATE, "Requested ship date"),
        VERSION,
    ),
    relations=(
        to_one("SalesOrder", "SalesOrderHeaderV2", ("SalesOrderNumber", "SalesOrderNumber")),
        to_one("Product", "ReleasedProductV2", ("ItemNumber", "ItemNumber")),
    ),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
    auto_create=True,
)

VENDOR_GROUP = EntityMetadata(
    name="VendorGroup",
    collection_name="VendorGroups",
    label="Vendor groups",
    table="vendvendorgroupentity",
    fields=(
        COMPANY,
        key("VendorGroupId", 10, "Vendor group"),
        string("Description", 60),
        string("DefaultPaymentTermName", 10, "Terms of payment"),
        VERSION,
    ),
    company_field="dataAreaId",
    operations=ALL_OPERATIONS,
)

DEMO_ENTITIES = (
    LEGAL_ENTITY,
    CUSTOMER_GROUP,
    CUSTOMER,
    VENDOR,
    RELEASED_PRODUCT,
    SALES_ORDER_HEADER,
    SALES_ORDER_LINE,
    VENDOR_GROUP,
)
