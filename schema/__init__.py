"""The GraphQL schema, generated at run time from the resolved entity catalog."""
