import ProxConfig
import ProxCore
import ProxFilters
import Testing

@Suite struct HeadersTests {
    @Test func requestEditsWithTemplates() throws {
        let s = try #require(snapshot(config("""
          - id: users
            match: {path: {regex: "^/users/(?<id>[0-9]+)"}}
            chain:
              - request_id
              - headers:
                  request:
                    remove: [X-Internal, Cookie]
                    set:
                      X-User: "{path.id}"
                      X-Client: "{client_ip}"
                      X-Env: prod
                    add:
                      X-Seen-By: "prox {request_id} for {host}{path}"
            proxy: up
        """)))
        let ctx = request(s, .get, "/users/42?x=1", headers: [("X-Internal", "secret"), ("X-Env", "dev"), ("x-internal", "2"),
                                                            ("Cookie", "a=b"), ("X-Seen-By", "lb")], client: "10.1.2.3")
        let (v, ran) = runRequest(ctx)
        #expect(v.isNext && ran == 2)
        #expect(s.routes[0].needsPathCaptures)
        #expect(lines(ctx.head.fields) == [
            "Host: example.com",
            "X-Seen-By: lb",
            "X-Request-Id: \(ctx.requestID)",
            "X-User: 42",
            "X-Client: 10.1.2.3",
            "X-Env: prod",
            "X-Seen-By: prox \(ctx.requestID) for example.com/users/42",
        ])
    }

    @Test func responseEdits() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain:
              - headers:
                  response:
                    remove: [Server, X-Powered-By]
                    set: {Cache-Control: no-store}
                    add: {Vary: Accept-Encoding}
            proxy: up
        """)))
        let ctx = request(s)
        let (_, ran) = runRequest(ctx)
        #expect(ctx.head.fields.addedBytes.isEmpty)
        let resp = runResponse(ctx, ran: ran, headers: [("Server", "nginx"), ("Cache-Control", "max-age=60"), ("Vary", "Origin")])
        #expect(lines(resp.fields) == ["Vary: Origin", "Cache-Control: no-store", "Vary: Accept-Encoding"])
    }

    @Test func sameChainDifferentRoutes() throws {
        // One named chain, two routes with differently numbered groups: templates compile per route.
        let s = try #require(snapshot(config("""
          - id: a
            match: {path: {regex: "^/a/(?<id>[0-9]+)"}}
            chain: tag
            proxy: up
          - id: b
            match: {path: {regex: "^/b/(x)/(?<id>[0-9]+)"}}
            chain: tag
            proxy: up
        chains:
          tag:
            - headers: {request: {set: {X-Id: "{path.id}"}}}
        """)))
        let a = request(s, .get, "/a/7"), b = request(s, .get, "/b/x/9")
        _ = runRequest(a)
        _ = runRequest(b)
        #expect(a.head.header(HeaderName("X-Id")) == "7")
        #expect(b.head.header(HeaderName("X-Id")) == "9")
    }

    @Test(arguments: [
        ("{request: {set: {Content-Length: \"1\"}}}", "routes[0].chain[0].headers.request.set.Content-Length", "managed by Prox"),
        ("{response: {remove: [Transfer-Encoding]}}", "routes[0].chain[0].headers.response.remove[0]", "managed by Prox"),
        ("{request: {set: {Host: a.example}}}", "routes[0].chain[0].headers.request.set.Host", "rewrite.host"),
        ("{request: {remove: [X-A], set: {X-A: b}}}", "routes[0].chain[0].headers.request.set.X-A", "both removed and set"),
        ("{request: {set: {\"X A\": b}}}", "routes[0].chain[0].headers.request.set[\"X A\"]", "not a valid header name"),
        ("{request: {add: {X-A: \"{nope}\"}}}", "routes[0].chain[0].headers.request.add.X-A", "unknown variable {nope}"),
        ("{}", "routes[0].chain[0].headers", "edits nothing"),
        ("{requests: {}}", "routes[0].chain[0].headers.requests", "unknown key 'requests'"),
    ])
    func configErrors(_ filter: String, _ path: String, _ message: String) {
        let errs = errors(config("""
          - id: r
            chain:
              - headers: \(filter)
            proxy: up
        """))
        #expect(errs.count == 1, "\(errs)")
        #expect(errs.first?.path == path, "\(errs)")
        #expect(errs.first?.message.contains(message) == true, "\(errs)")
    }
}
