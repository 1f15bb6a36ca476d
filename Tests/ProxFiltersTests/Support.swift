import NIOCore
import ProxConfig
import ProxCore
import ProxFilterTesting
import Testing

/// A config with one listener and one pool, and `routes` appended (the same one custom
/// filters' tests get from ProxFilterTesting).
func config(_ routes: String) -> String { FilterTestbed.config(routes: routes) }

/// Compiles a config that must be valid.
func snapshot(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> Snapshot? {
    let r = ConfigCompiler.compile(text: yaml, fileName: "f.yaml", version: 1)
    #expect(r.diagnostics.isEmpty, "\(DiagnosticFormatter.text(r.diagnostics))", sourceLocation: sourceLocation)
    return r.snapshot
}

/// The diagnostics of a config that must be invalid.
func errors(_ yaml: String) -> [Diagnostic] {
    ConfigCompiler.compile(text: yaml, fileName: "f.yaml", version: 1).errors
}

/// A request routed in `s`, as the engine would set it up, with tracing on.
func request(_ s: Snapshot, _ method: HTTPMethod = .get, _ target: String = "/", headers: [(String, String)] = [],
             client: String = "127.0.0.1") -> RequestContext {
    var hs = headers
    if !hs.contains(where: { $0.0.lowercased() == "host" }) { hs.insert(("Host", "example.com"), at: 0) }
    let head = RequestHead.make(method: method, target: target, headers: hs)
    let ctx = RequestContext(head: head, snapshot: s, listener: s.listeners[0], client: IPAddress(client)!, clientPort: 40000,
                             eventLoop: nil, trace: Trace())
    if let m = s.router.match(head, listener: 0) {
        let route = s.routes[m.routeIndex]
        ctx.route = route
        route.captureInto(ctx)
    }
    return ctx
}

/// Runs the routed chain's request side; returns the verdict and how many stages ran.
func runRequest(_ ctx: RequestContext) -> (Verdict, Int) {
    guard let route = ctx.route else { return (.respond(LocalResponse(status: 404)), 0) }
    return route.chain.runRequest(ctx)
}

/// Runs the request-body phase over the stages that ran, piece by piece (`sizes` bytes each),
/// as the engine does; returns the index of the piece refused and the answer, or nil.
func runBody(_ ctx: RequestContext, ran: Int, _ sizes: [Int]) -> (piece: Int, response: LocalResponse)? {
    guard let route = ctx.route else { return nil }
    for (i, n) in sizes.enumerated() {
        var part = ByteBuffer()
        part.writeRepeatingByte(UInt8(ascii: "x"), count: n)
        if case .respond(let r) = route.chain.runRequestBody(ctx, part, ranCount: ran) { return (i, r) }
    }
    return nil
}

/// Runs the response side over the stages that ran, on a 200 response.
func runResponse(_ ctx: RequestContext, ran: Int, headers: [(String, String)] = []) -> ResponseHead {
    var head = ResponseHead(status: 200)
    for (n, v) in headers { head.fields.add(HeaderName(n), v) }
    ctx.route?.chain.runResponse(ctx, &head, ranCount: ran)
    return head
}

extension Verdict {
    var local: LocalResponse? {
        if case .respond(let r) = self { return r }
        return nil
    }
    var isNext: Bool {
        if case .next = self { return true }
        return false
    }
}

/// Header lines as `name: value`, in the order they would be written.
func lines(_ fields: HeaderFields) -> [String] {
    fields.effective.map { "\($0.name): \($0.value)" }
}
