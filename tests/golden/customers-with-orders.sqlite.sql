-- root page
SELECT custcustomerv3entity.customeraccount AS "CustomerAccount", custcustomerv3entity.creditlimit AS "CreditLimit", custcustomerv3entity.dataareaid AS "dataAreaId", (SELECT count(*) AS count_1 
FROM custcustomerv3entity 
WHERE custcustomerv3entity.dataareaid = ? AND ((EXISTS (SELECT 1 
FROM salessalesorderheaderv2entity AS salessalesorderheaderv2entity_1 
WHERE salessalesorderheaderv2entity_1.dataareaid = custcustomerv3entity.dataareaid AND salessalesorderheaderv2entity_1.orderingcustomeraccountnumber = custcustomerv3entity.customeraccount AND (EXISTS (SELECT 1 
FROM salessalesorderlinev2entity AS salessalesorderlinev2entity_1 
WHERE salessalesorderlinev2entity_1.dataareaid = salessalesorderheaderv2entity_1.dataareaid AND salessalesorderlinev2entity_1.salesordernumber = salessalesorderheaderv2entity_1.salesordernumber AND salessalesorderlinev2entity_1.lineamount > ?)))) OR (lower(custcustomerv3entity.organizationname) LIKE '%' || lower(?) || '%' ESCAPE '/'))) AS "@total" 
FROM custcustomerv3entity 
WHERE custcustomerv3entity.dataareaid = ? AND ((EXISTS (SELECT 1 
FROM salessalesorderheaderv2entity AS salessalesorderheaderv2entity_1 
WHERE salessalesorderheaderv2entity_1.dataareaid = custcustomerv3entity.dataareaid AND salessalesorderheaderv2entity_1.orderingcustomeraccountnumber = custcustomerv3entity.customeraccount AND (EXISTS (SELECT 1 
FROM salessalesorderlinev2entity AS salessalesorderlinev2entity_1 
WHERE salessalesorderlinev2entity_1.dataareaid = salessalesorderheaderv2entity_1.dataareaid AND salessalesorderlinev2entity_1.salesordernumber = salessalesorderheaderv2entity_1.salesordernumber AND salessalesorderlinev2entity_1.lineamount > ?)))) OR (lower(custcustomerv3entity.organizationname) LIKE '%' || lower(?) || '%' ESCAPE '/')) AND (custcustomerv3entity.creditlimit < ? OR custcustomerv3entity.creditlimit = ? AND custcustomerv3entity.dataareaid > ? OR custcustomerv3entity.creditlimit = ? AND custcustomerv3entity.dataareaid = ? AND custcustomerv3entity.customeraccount > ?) ORDER BY custcustomerv3entity.creditlimit DESC NULLS FIRST, custcustomerv3entity.dataareaid ASC NULLS LAST, custcustomerv3entity.customeraccount ASC NULLS LAST
 LIMIT ? OFFSET ?
-- sales orders of every customer on the page, five each
SELECT anon_1."SalesOrderNumber", anon_1."RequestedShippingDate", anon_1."dataAreaId", anon_1."OrderingCustomerAccountNumber", anon_1."@total", anon_1."@rank" 
FROM (SELECT anon_2."SalesOrderNumber" AS "SalesOrderNumber", anon_2."RequestedShippingDate" AS "RequestedShippingDate", anon_2."dataAreaId" AS "dataAreaId", anon_2."OrderingCustomerAccountNumber" AS "OrderingCustomerAccountNumber", anon_2."@total" AS "@total", row_number() OVER (PARTITION BY anon_2."dataAreaId", anon_2."OrderingCustomerAccountNumber" ORDER BY anon_2."RequestedShippingDate" DESC NULLS FIRST, anon_2."dataAreaId" ASC NULLS LAST, anon_2."SalesOrderNumber" ASC NULLS LAST) AS "@rank" 
FROM (SELECT salessalesorderheaderv2entity.salesordernumber AS "SalesOrderNumber", salessalesorderheaderv2entity.requestedshippingdate AS "RequestedShippingDate", salessalesorderheaderv2entity.dataareaid AS "dataAreaId", salessalesorderheaderv2entity.orderingcustomeraccountnumber AS "OrderingCustomerAccountNumber", count(*) OVER (PARTITION BY salessalesorderheaderv2entity.dataareaid, salessalesorderheaderv2entity.orderingcustomeraccountnumber) AS "@total" 
FROM salessalesorderheaderv2entity 
WHERE (salessalesorderheaderv2entity.dataareaid, salessalesorderheaderv2entity.orderingcustomeraccountnumber) IN (SELECT json_extract(anon_3.value, ?) AS k0, json_extract(anon_3.value, ?) AS k1 
FROM json_each(?) AS anon_3) AND 1 = 1) AS anon_2) AS anon_1 
WHERE anon_1."@rank" <= ? ORDER BY anon_1."dataAreaId", anon_1."OrderingCustomerAccountNumber", anon_1."@rank"
