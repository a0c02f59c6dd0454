"""OData v4 services (F&O `/data`, Dataverse Web API) as datasources."""
