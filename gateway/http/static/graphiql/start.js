// Starts GraphiQL against this gateway's /graphql endpoint.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
  var example = [
    "# Customers of USMF with their latest orders. Open the Docs pane for every entity.",
    "{",
    "  customersV3(company: \"USMF\", first: 5, orderBy: [{field: CreditLimit, direction: DESC}]) {",
    "    totalCount",
    "    nodes {",
    "      customerAccount",
    "      organizationName",
    "      creditLimit",
    "      onHoldStatus",
    "      salesOrders(first: 3) { nodes { salesOrderNumber salesOrderStatus } }",
    "    }",
    "    pageInfo { hasNextPage endCursor }",
    "  }",
    "}",
    ""
  ].join("\n");
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: example })
  );
})();
