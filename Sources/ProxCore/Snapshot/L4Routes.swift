/// One `l4_routes` entry of a TLS listener, as compiled: which ClientHellos it takes (by SNI)
/// and what happens to their connections, decided before any TLS is terminated.
public struct L4Route: Sendable {
    public enum Action: Sendable, Equatable {
        /// Relay the raw TCP stream (the ClientHello included) to an endpoint of this pool.
        case pass(pool: Int)
        /// Close the connection.
        case drop
    }

    public let id: String
    /// Exact names, lowercased.
    public let exact: Set<String>
    /// Wildcards, by what follows `*.`: `*.example.com` covers one label (`a.example.com`).
    public let wildcards: Set<String>
    /// Takes a ClientHello without a server name.
    public let matchesNoSNI: Bool
    public let action: Action
    /// A relayed connection with no byte either way for this long is closed.
    public let idleTimeout: TimeAmountMillis
    /// The names as the config lists them (for dry-run).
    public let names: [String]
    /// Where it was declared (`file:line:col`).
    public let origin: String

    public init(id: String, names: [String], matchesNoSNI: Bool, action: Action, idleTimeout: TimeAmountMillis, origin: String) {
        self.id = id
        self.names = names
        var exact = Set<String>(), wild = Set<String>()
        for n in names {
            if n.hasPrefix("*.") { wild.insert(String(n.dropFirst(2))) } else { exact.insert(n) }
        }
        self.exact = exact
        self.wildcards = wild
        self.matchesNoSNI = matchesNoSNI
        self.action = action
        self.idleTimeout = idleTimeout
        self.origin = origin
    }

    /// Whether a ClientHello naming `serverName` (normalized: lowercase, no trailing dot; nil:
    /// no SNI) is this route's. The same rules as certificate selection: exact, then a wildcard
    /// covering the first label.
    public func matches(_ serverName: String?) -> Bool {
        guard let name = serverName else { return matchesNoSNI }
        if exact.contains(name) { return true }
        if !wildcards.isEmpty, let dot = name.utf8.firstIndex(of: UInt8(ascii: ".")) {
            return wildcards.contains(String(name[name.index(after: dot)...]))
        }
        return false
    }

    /// Why it matched (for dry-run and logs).
    public func matchReason(_ serverName: String?) -> String {
        guard let name = serverName else { return "no SNI (`no_sni: true`)" }
        if exact.contains(name) { return "exact name \(name)" }
        if let dot = name.firstIndex(of: ".") { return "wildcard *.\(name[name.index(after: dot)...])" }
        return name
    }
}

/// A TLS listener's `l4_routes`, in order, with the ClientHello peek's bounds. Lives in the
/// snapshot with the listener's TLS, so L4 and L7 routes of one port reload together; a new
/// connection reads the current one once, when its ClientHello is complete.
public final class L4Table: Sendable {
    public let routes: [L4Route]
    /// Time from the connection's start to a complete ClientHello; past it, the connection closes.
    public let clientHelloTimeout: TimeAmountMillis
    /// Most bytes of TLS records buffered to find a complete ClientHello; beyond, the connection closes.
    public let clientHelloMaxBytes: Int

    public init(routes: [L4Route], clientHelloTimeout: TimeAmountMillis = 5_000, clientHelloMaxBytes: Int = 16 * 1024) {
        self.routes = routes
        self.clientHelloTimeout = clientHelloTimeout
        self.clientHelloMaxBytes = clientHelloMaxBytes
    }

    /// The first route, in order, that takes `serverName`; nil: none does (TLS is terminated and
    /// HTTP routed as on a listener without `l4_routes`). Once per connection.
    public func select(_ serverName: String?) -> Int? {
        routes.firstIndex { $0.matches(serverName) }
    }

    public static let defaultIdleTimeout: TimeAmountMillis = 600_000
}
