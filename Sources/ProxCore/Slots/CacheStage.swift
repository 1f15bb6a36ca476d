/// What a route's cache slot found for a request.
public enum CacheLookup: Sendable {
    /// Nothing usable stored: the request goes on to the split and the upstream.
    case miss
    /// A stored answer: it is sent to the client, the upstream is not contacted.
    case hit(LocalResponse)
}

/// A route's cache slot: looked up after the middleware chain has passed, before the traffic
/// split and the upstream. An immutable value built by the compiler and shared by every event
/// loop; its stores live in registries keyed by stable ids (ARCHITECTURE.md contract 3).
///
/// Every method runs on the request's event loop. Only `lookup` is required: the hooks default
/// to doing nothing.
public protocol CacheStage: Sendable {
    /// The cache type, shown in traces and logs.
    var kind: String { get }
    /// Looks the request up. A `.hit` answers the client; a `.miss` goes on to the upstream.
    func lookup(_ ctx: RequestContext) -> CacheLookup
    /// Offered the upstream's response head for a request that missed, once the response stages
    /// ran on it (the head as the client gets it), before it is written; may decide to keep it.
    func store(_ ctx: RequestContext, _ head: ResponseHead)
}

extension CacheStage {
    public func store(_ ctx: RequestContext, _ head: ResponseHead) {}
}

/// The cache slot of a route that configures none: every lookup misses. A route without a
/// cache holds `nil` in its slot (no call at all on the hot path); this is its explicit form.
public struct PassThroughCache: CacheStage {
    public init() {}
    public var kind: String { "pass-through" }
    public func lookup(_ ctx: RequestContext) -> CacheLookup { .miss }
}
