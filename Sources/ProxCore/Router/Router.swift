/// The result of routing: the route index, in config order.
public struct RouterMatch: Sendable, Equatable {
    public var routeIndex: Int
    public init(routeIndex: Int) { self.routeIndex = routeIndex }
}

/// The router. Placeholder implementation: tries each route in order. To be replaced by the
/// compiled structure (host tables, path tries, combined regex alternations).
public final class Router: Sendable {
    public let specs: [RouteMatchSpec]

    public init(_ specs: [RouteMatchSpec]) throws {
        self.specs = specs
    }

    /// The first route, in config order, that matches. Runs on the request's event loop.
    public func match(_ head: RequestHead, listener: Int) -> RouterMatch? {
        for (i, s) in specs.enumerated() where s.mismatch(head, listener: listener) == nil {
            return RouterMatch(routeIndex: i)
        }
        return nil
    }
}
