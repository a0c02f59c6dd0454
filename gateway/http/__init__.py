"""HTTP transport: GraphQL over HTTP, and the offline GraphiQL page."""
