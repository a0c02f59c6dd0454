-- root page
SELECT custcustomerv3entity.customeraccount AS "CustomerAccount", custcustomerv3entity.creditlimit AS "CreditLimit", custcustomerv3entity.dataareaid AS "dataAreaId", (SELECT count(*) AS count_1 
FROM custcustomerv3entity 
WHERE custcustomerv3entity.dataareaid = $1::VARCHAR AND ((EXISTS (SELECT 1 
FROM salessalesorderheaderv2entity AS salessalesorderheaderv2entity_1 
WHERE salessalesorderheaderv2entity_1.dataareaid = custcustomerv3entity.dataareaid AND salessalesorderheaderv2entity_1.orderingcustomeraccountnumber = custcustomerv3entity.customeraccount AND (EXISTS (SELECT 1 
FROM salessalesorderlinev2entity AS salessalesorderlinev2entity_1 
WHERE salessalesorderlinev2entity_1.dataareaid = salessalesorderheaderv2entity_1.dataareaid AND salessalesorderlinev2entity_1.salesordernumber = salessalesorderheaderv2entity_1.salesordernumber AND salessalesorderlinev2entity_1.lineamount > $2::NUMERIC(32, 2))))) OR (custcustomerv3entity.organizationname ILIKE '%' || $3::VARCHAR || '%' ESCAPE '/'))) AS "@total" 
FROM custcustomerv3entity 
WHERE custcustomerv3entity.dataareaid = $1::VARCHAR AND ((EXISTS (SELECT 1 
FROM salessalesorderheaderv2entity AS salessalesorderheaderv2entity_1 
WHERE salessalesorderheaderv2entity_1.dataareaid = custcustomerv3entity.dataareaid AND salessalesorderheaderv2entity_1.orderingcustomeraccountnumber = custcustomerv3entity.customeraccount AND (EXISTS (SELECT 1 
FROM salessalesorderlinev2entity AS salessalesorderlinev2entity_1 
WHERE salessalesorderlinev2entity_1.dataareaid = salessalesorderheaderv2entity_1.dataareaid AND salessalesorderlinev2entity_1.salesordernumber = salessalesorderheaderv2entity_1.salesordernumber AND salessalesorderlinev2entity_1.lineamount > $2::NUMERIC(32, 2))))) OR (custcustomerv3entity.organizationname ILIKE '%' || $3::VARCHAR || '%' ESCAPE '/')) AND (custcustomerv3entity.creditlimit < $4::NUMERIC(32, 2) OR custcustomerv3entity.creditlimit = $5::NUMERIC(32, 2) AND custcustomerv3entity.dataareaid > $6::VARCHAR OR custcustomerv3entity.creditlimit = $7::NUMERIC(32, 2) AND custcustomerv3entity.dataareaid = $8::VARCHAR AND custcustomerv3entity.customeraccount > $9::VARCHAR) ORDER BY custcustomerv3entity.creditlimit DESC NULLS FIRST, custcustomerv3entity.dataareaid ASC NULLS LAST, custcustomerv3entity.customeraccount ASC NULLS LAST 
 LIMIT $10::INTEGER
-- sales orders of every customer on the page, five each
SELECT anon_1."SalesOrderNumber", anon_1."RequestedShippingDate", anon_1."dataAreaId", anon_1."OrderingCustomerAccountNumber", anon_1."@total", anon_1."@rank" 
FROM (SELECT anon_2."SalesOrderNumber" AS "SalesOrderNumber", anon_2."RequestedShippingDate" AS "RequestedShippingDate", anon_2."dataAreaId" AS "dataAreaId", anon_2."OrderingCustomerAccountNumber" AS "OrderingCustomerAccountNumber", anon_2."@total" AS "@total", row_number() OVER (PARTITION BY anon_2."dataAreaId", anon_2."OrderingCustomerAccountNumber" ORDER BY anon_2."RequestedShippingDate" DESC NULLS FIRST, anon_2."dataAreaId" ASC NULLS LAST, anon_2."SalesOrderNumber" ASC NULLS LAST) AS "@rank" 
FROM (SELECT salessalesorderheaderv2entity.salesordernumber AS "SalesOrderNumber", salessalesorderheaderv2entity.requestedshippingdate AS "RequestedShippingDate", salessalesorderheaderv2entity.dataareaid AS "dataAreaId", salessalesorderheaderv2entity.orderingcustomeraccountnumber AS "OrderingCustomerAccountNumber", count(*) OVER (PARTITION BY salessalesorderheaderv2entity.dataareaid, salessalesorderheaderv2entity.orderingcustomeraccountnumber) AS "@total" 
FROM salessalesorderheaderv2entity 
WHERE (salessalesorderheaderv2entity.dataareaid, salessalesorderheaderv2entity.orderingcustomeraccountnumber) IN (SELECT CAST(anon_3.value ->> $1::INTEGER AS VARCHAR(4)) AS k0, CAST(anon_3.value ->> $2::INTEGER AS VARCHAR(20)) AS k1 
FROM jsonb_array_elements(CAST($3::VARCHAR AS JSONB)) AS anon_3) AND true) AS anon_2) AS anon_1 
WHERE anon_1."@rank" <= $4::INTEGER ORDER BY anon_1."dataAreaId", anon_1."OrderingCustomerAccountNumber", anon_1."@rank"
