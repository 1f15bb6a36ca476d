/// The config `prox serve` runs without `--config`: everything answers from Prox itself, so a
/// newcomer can curl it at once. It is also a tour of the format.
public enum DefaultConfig {
    public static let yaml = #"""
# Prox's built-in config: what `prox serve` runs when you give it no --config.
# It needs nothing else running: the "upstream" of /api/ is Prox itself.
#
#   curl localhost:8080/                 what to try
#   curl -i localhost:8080/api/hello     routing, rewrite, request ids, headers and proxying, end to end
#   curl -i localhost:8080/old/guide     a redirect built from a regex capture
#
# Write your own: docs/CONFIG.md describes every key; `prox schema` prints the JSON Schema
# for editors; `prox validate my.yaml` checks a file; `prox dry-run` shows what a request would do.
version: 1

server:
  name: prox
  access_log: stdout          # one line per request; `off` or a file path also work

listeners:
  - id: main
    address: 127.0.0.1:8080   # loopback only; 0.0.0.0:8080 would accept from the network

pools:
  # The pool /api/ proxies to. Its one endpoint is this very listener, where the `echo`
  # route below plays the part of an upstream service.
  - id: self
    endpoints: [127.0.0.1:8080]
    timeouts: {connect: 1s, response_header: 5s}

chains:
  # A named chain: filters that several routes could share with `chain: edge`.
  edge:
    # Give the request an id (32 hex digits), send it upstream in X-Request-Id and
    # return it on the response.
    - request_id: {header: X-Request-Id}
    # Headers added on the way up and on the way back. Values are templates.
    - headers:
        request:
          set:
            X-Demo-Route: "{route}"            # the id of the route that took the request
            X-Demo-Client: "{client_ip}"
        response:
          set:
            X-Demo: "routed by prox, route {route}"

routes:
  # Routes are tried in order; the first whose `match` holds takes the request.

  # /api/... is proxied to pool `self` with its prefix rewritten: /api/hello?x=1 goes
  # upstream as /_upstream/hello?x=1.
  - id: api
    match:
      path: {prefix: /api/}
    chain: edge
    rewrite:
      replace_prefix: /_upstream/
    proxy: self

  # The pretend upstream: shows what arrived after the proxy hop. Only loopback clients may
  # call it (the proxy itself, and you on this machine).
  - id: echo
    match:
      path: {prefix: /_upstream/}
    chain:
      - ip_access: {allow: [127.0.0.1, "::1"]}
      - request_id: {trust_incoming: true}     # keep the id the api route made
    respond:
      status: 200
      body: |
        Hello from the echo route: this is what the upstream received.
          method:          {method}
          path:            {path}
          query:           {query}
          X-Request-Id:    {header.X-Request-Id}
          X-Forwarded-For: {header.X-Forwarded-For}
          X-Demo-Route:    {header.X-Demo-Route}     (added by the headers filter)
          Via:             {header.Via}

  # A redirect whose location uses a capture of the path regex.
  - id: old-docs
    match:
      path: {regex: "^/old/(?<page>[a-z0-9-]+)$"}
      methods: [GET, HEAD]
    redirect:
      status: 301
      location: "/docs/{path.page}"

  - id: home
    match:
      path: {exact: /}
    respond:
      body: |
        Prox is running with its built-in config (prox serve --config FILE to use yours).

        Try:
          curl -i localhost:8080/api/hello    proxied to an echo route, with a rewrite,
                                              a request id and added headers
          curl -i localhost:8080/old/guide    a 301 redirect to /docs/guide
          curl -i localhost:8080/nothing      no route of yours: the catch-all answers 404

        Then: docs/CONFIG.md, prox schema, prox validate FILE, prox dry-run.

  # No `match`: takes every request the routes above did not. It must be last: a route
  # after it could never match, and `prox validate` says so.
  - id: not-found
    chain: [request_id]      # a filter named alone runs with its defaults
    respond:
      status: 404
      body: "No route for {method} {path} (request id {request_id}). Try: curl localhost:8080/\n"
"""#
}
