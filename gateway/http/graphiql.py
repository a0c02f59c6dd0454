"""GraphiQL served entirely from the gateway (pinned assets in static/graphiql), so the
playground works on networks with no internet access."""

from __future__ import annotations

from starlette.responses import HTMLResponse

ASSETS = "/static/graphiql"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>fno-gateway · GraphiQL</title>
  <link rel="stylesheet" href="{ASSETS}/graphiql.min.css">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{ASSETS}/react.production.min.js"></script>
  <script src="{ASSETS}/react-dom.production.min.js"></script>
  <script src="{ASSETS}/graphiql.min.js"></script>
  <script src="{ASSETS}/graphql-ws.min.js"></script>
  <script src="{ASSETS}/start.js"></script>
</body>
</html>
"""


def graphiql_page() -> HTMLResponse:
    return HTMLResponse(PAGE)
