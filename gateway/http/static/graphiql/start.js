// Starts GraphiQL against this gateway's /graphql endpoint.
(function () {
  var http = GraphiQL.createFetcher({ url: window.location.pathname });
  var socket = (window.location.protocol === "https:" ? "wss://" : "ws://") +
    window.location.host + window.location.pathname;

  // Decided from the query sent, parsed here: the editor's own parse can lag behind
  // a change made just before Run.
  var graphql = GraphiQL.GraphQL;
  function isSubscription(params) {
    try {
      var operation = graphql.getOperationAST(graphql.parse(params.query), params.operationName);
      return !!operation && operation.operation === "subscription";
    } catch (e) {
      return false; // the gateway reports what does not parse
    }
  }

  // Subscriptions go over graphql-transport-ws, carrying the Headers pane's
  // Authorization in connection_init; everything else over HTTP.
  function fetcher(params, opts) {
    if (!isSubscription(params)) return http(params, opts);
    return {
      subscribe: function (sink) {
        var client = graphqlWs.createClient({
          url: socket,
          connectionParams: (opts && opts.headers) || {},
        });
        var stop = client.subscribe(params, sink);
        return { unsubscribe: function () { stop(); client.dispose(); } };
      },
    };
  }
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
