import ProxConfig
import ProxCore
import ProxFilters

/// Helpers for a filter's unit tests, in or out of this repository: compile a config with the
/// built-ins plus the filters under test, route a request as the engine would (tracing on), run
/// the chain. Framework-neutral: it returns values and the test asserts.
///
/// ```swift
/// let bed = FilterTestbed([FilterDescriptor(TenantFactory.self)])
/// let r = bed.compile(FilterTestbed.config(routes: "  - id: r\n    chain: [{tenant: {hosts: {a.example: a}}}]\n    proxy: up"))
/// let ctx = bed.request(r.snapshot!, host: "a.example")
/// let (verdict, _) = bed.run(ctx)
/// ```
public struct FilterTestbed: Sendable {
    public let filters: FilterRegistry

    /// The built-ins plus `filters`; a duplicate name stops the test with both registrations named.
    public init(_ filters: [FilterDescriptor], file: String = #fileID, line: Int = #line) {
        self.filters = BuiltinFilters.registry.adding(filters, origin: .custom, file: file, line: line)
    }

    /// A config with one listener (`main`) and one pool (`up`), and `routes` (YAML list items,
    /// indented two spaces) appended.
    public static func config(routes: String) -> String {
        """
        version: 1
        listeners:
          - id: main
            address: 127.0.0.1:8080
        pools:
          - id: up
            endpoints: [127.0.0.1:9000]
        routes:
        \(routes)
        """
    }

    public func compile(_ yaml: String, fileName: String = "f.yaml") -> CompileResult {
        ConfigCompiler.compile(text: yaml, fileName: fileName, version: 1, filters: filters)
    }

    /// A request routed in `snapshot` as the engine would set it up, with tracing on.
    public func request(_ snapshot: Snapshot, _ method: HTTPMethod = .get, _ target: String = "/", host: String = "example.com",
                        headers: [(String, String)] = [], client: String = "127.0.0.1") -> RequestContext {
        let head = RequestHead.make(method: method, target: target, headers: [("Host", host)] + headers)
        let ctx = RequestContext(head: head, snapshot: snapshot, listener: snapshot.listeners[0], client: IPAddress(client)!,
                                 clientPort: 40000, eventLoop: nil, trace: Trace())
        if let m = snapshot.router.match(head, listener: 0) {
            let route = snapshot.routes[m.routeIndex]
            ctx.route = route
            route.captureInto(ctx)
        }
        return ctx
    }

    /// Runs the routed chain's request side: the verdict and how many stages ran.
    public func run(_ ctx: RequestContext) -> (Verdict, Int) {
        guard let route = ctx.route else { return (.respond(LocalResponse(status: 404)), 0) }
        return route.chain.runRequest(ctx)
    }
}
