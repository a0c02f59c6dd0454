"""The dual-write application's out-of-the-box map definitions.

Installing the application writes these into the Dataverse environment; the
dual-write engine reads them from there. Plain data, versioned with the application:
each field mapping names the F&O field, the Dataverse column and the direction
(`both`, `to_dataverse`, `to_fno`); a `lookup` resolves a code to the row it names.
"""

from __future__ import annotations

from typing import Any

APPLICATION_VERSION = "1.0.0"


def _field(fno: str, dataverse: str, direction: str = "both", **extra: Any) -> dict[str, Any]:
    return {"fno": fno, "dataverse": dataverse, "direction": direction, **extra}


OUT_OF_THE_BOX_MAPS: tuple[dict[str, Any], ...] = (
    {
        "name": "Legal entities (cdm_companies)",
        "version": APPLICATION_VERSION,
        "fno_entity": "LegalEntity",
        "dataverse_table": "cdm_company",
        "company_specific": False,
        "key": [["LegalEntityId", "cdm_companycode"]],
        "fields": [
            _field("LegalEntityId", "cdm_companycode"),
            _field("Name", "cdm_name"),
        ],
        "depends_on": [],
    },
    {
        "name": "Customer groups (msdyn_customergroups)",
        "version": APPLICATION_VERSION,
        "fno_entity": "CustomerGroup",
        "dataverse_table": "msdyn_customergroup",
        "company_specific": True,
        "key": [["dataAreaId", "msdyn_company"], ["CustomerGroupId", "msdyn_groupid"]],
        "fields": [
            _field("dataAreaId", "msdyn_company"),
            _field("CustomerGroupId", "msdyn_groupid"),
            _field("Description", "msdyn_description"),
            _field("IsSalesTaxIncludedInPrice", "", "to_fno", default="No"),
        ],
        "depends_on": ["Legal entities (cdm_companies)"],
    },
    {
        "name": "Customers V3 (accounts)",
        "version": APPLICATION_VERSION,
        "fno_entity": "CustomerV3",
        "dataverse_table": "account",
        "company_specific": True,
        "fno_filter": "PartyType == Organization",
        "key": [["dataAreaId", "msdyn_company"], ["CustomerAccount", "accountnumber"]],
        "fields": [
            _field("dataAreaId", "msdyn_company"),
            _field("CustomerAccount", "accountnumber"),
            _field("OrganizationName", "name"),
            _field("CustomerGroupId", "msdyn_customergroupid"),
            _field("CreditLimit", "creditlimit"),
            _field("DeliveryAddressStreet", "address1_line1"),
            _field("DeliveryAddressCity", "address1_city"),
            _field("DeliveryAddressZipCode", "address1_postalcode"),
            _field("DeliveryAddressCountryRegionId", "address1_country"),
            _field("InvoiceAddressStreet", "address2_line1"),
            _field("InvoiceAddressCity", "address2_city"),
            _field("InvoiceAddressZipCode", "address2_postalcode"),
            _field("InvoiceAddressCountryRegionId", "address2_country"),
            _field("PrimaryContactPhone", "telephone1"),
            _field("PrimaryContactEmail", "emailaddress1"),
            _field("", "statecode", "to_dataverse", default="Active"),
            _field("SalesCurrencyCode", "", "to_fno", default="USD"),
            _field("PartyType", "", "to_fno", default="Organization"),
            _field("CreditLimitIsMandatory", "", "to_fno", default="No"),
            _field("OnHoldStatus", "", "to_fno", default="No"),
        ],
        "depends_on": ["Customer groups (msdyn_customergroups)"],
    },
    {
        "name": "Released products (products)",
        "version": APPLICATION_VERSION,
        "fno_entity": "ReleasedProductV2",
        "dataverse_table": "product",
        "company_specific": True,
        "key": [["dataAreaId", "msdyn_company"], ["ItemNumber", "productnumber"]],
        "fields": [
            _field("dataAreaId", "msdyn_company", "to_dataverse"),
            _field("ItemNumber", "productnumber", "to_dataverse"),
            _field("ProductName", "name", "to_dataverse"),
            _field("SearchName", "description", "to_dataverse"),
        ],
        "depends_on": ["Legal entities (cdm_companies)"],
    },
    {
        "name": "Sales order headers (salesorders)",
        "version": APPLICATION_VERSION,
        "fno_entity": "SalesOrderHeaderV2",
        "dataverse_table": "salesorder",
        "company_specific": True,
        "key": [["dataAreaId", "msdyn_company"], ["SalesOrderNumber", "ordernumber"]],
        "fields": [
            _field("dataAreaId", "msdyn_company"),
            _field("SalesOrderNumber", "ordernumber"),
            _field("SalesOrderName", "name"),
            _field("CurrencyCode", "", "to_fno", default="USD"),
            _field("SalesOrderStatus", "", "to_fno", default="Backorder"),
            _field("", "statecode", "to_dataverse", default="Active"),
            _field(
                "OrderingCustomerAccountNumber",
                "customerid",
                lookup=[  # polymorphic: the customer is an account or a contact
                    {
                        "table": "account",
                        "by": "accountnumber",
                        "returns": "accountid",
                        "company": "msdyn_company",
                    },
                    {
                        "table": "contact",
                        "by": "msdyn_contactpersonid",
                        "returns": "contactid",
                        "company": "msdyn_company",
                    },
                ],
            ),
            _field("RequestedShippingDate", "requestdeliveryby"),
        ],
        "depends_on": ["Customers V3 (accounts)"],
    },
)
