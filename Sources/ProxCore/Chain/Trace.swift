/// What one stage looked at, what it decided and why: recorded for `prox dry-run` and
/// `prox check`. On the hot path `RequestContext.trace` is nil and recording costs a nil check.
public struct TraceEntry: Sendable, Codable, Equatable {
    public var stage: String
    public var looked: String
    public var decided: String
    public var why: String

    public init(stage: String, looked: String, decided: String, why: String) {
        self.stage = stage
        self.looked = looked
        self.decided = decided
        self.why = why
    }
}

public final class Trace {
    public var entries: [TraceEntry] = []
    public init() {}
}
